import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestBodyBytesMax } from './limits.ts';

/**
 * Plain node:http instead of Fastify: the sandbox must misbehave at the socket level (drop a
 * connection mid-request, hang without answering, refuse connections on one port while another
 * serves, hold Server-Sent Events open), which Fastify would only let us do by hijacking every
 * reply. Horizon's own query semantics are hand-checked against named bounds instead of schemas.
 */

export type Problem = {
  type: string;
  title: string;
  status: number;
  detail: string;
  extras?: Record<string, unknown>;
};

export const problemTypeBase = 'https://stellar.org/horizon-errors/';

export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
}

export async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > requestBodyBytesMax)
      throw new BodyTooLargeError(`request body above ${requestBodyBytesMax} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  contentType = 'application/hal+json',
): void {
  if (response.headersSent || response.destroyed) return;
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'Content-Type': `${contentType}; charset=utf-8`,
    'Content-Length': Buffer.byteLength(text),
  });
  response.end(text);
}

export function sendProblem(response: ServerResponse, problem: Problem): void {
  sendJson(response, problem.status, problem, 'application/problem+json');
}

export function notFound(): Problem {
  return {
    type: `${problemTypeBase}not_found`,
    title: 'Resource Missing',
    status: 404,
    detail:
      'The resource at the url requested was not found.  This usually occurs for one of two reasons:  The url requested is not valid, or no data in our database could be found with the parameters provided.',
  };
}

export function badRequest(field: string, reason: string): Problem {
  return {
    type: `${problemTypeBase}bad_request`,
    title: 'Bad Request',
    status: 400,
    detail: 'The request you sent was invalid in some way.',
    extras: { invalid_field: field, reason },
  };
}

export function injectedError(status: number): Problem {
  const titles: Record<number, [string, string]> = {
    500: ['server_error', 'Internal Server Error'],
    502: ['bad_gateway', 'Bad Gateway'],
    503: ['service_unavailable', 'Service Unavailable'],
    429: ['rate_limit_exceeded', 'Rate Limit Exceeded'],
  };
  const [type, title] = titles[status] ?? ['server_error', 'Internal Server Error'];
  return {
    type: `${problemTypeBase}${type}`,
    title,
    status,
    detail: 'Injected by the sandbox fault registry.',
  };
}
