import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { problemContentType } from './problems.ts';

/**
 * What the request log says about a request. The logger never writes request-supplied free text:
 * a path carries ids and a query string carries whatever the caller put there (`?api_key=…`,
 * `?phone=…`), so a URL is logged as its route template plus the names of the query parameters
 * the route declares. Undeclared names are only counted (a name is free text too), and a request
 * that matched no route logs no path at all.
 */
export const unmatchedRouteLabel = '(no route)';

function declaredQueryNames(request: FastifyRequest): ReadonlySet<string> {
  const schema = request.routeOptions.schema?.querystring as
    | { properties?: Record<string, unknown> }
    | undefined;
  return new Set(Object.keys(schema?.properties ?? {}));
}

export function routeLabel(request: FastifyRequest): string {
  const template = request.routeOptions.url;
  if (template === undefined) return unmatchedRouteLabel;
  const rawUrl = request.raw.url ?? '';
  const queryStart = rawUrl.indexOf('?');
  if (queryStart === -1) return template;
  const declared = declaredQueryNames(request);
  const named: string[] = [];
  let undeclared = 0;
  for (const name of new Set(new URLSearchParams(rawUrl.slice(queryStart + 1)).keys())) {
    if (declared.has(name)) named.push(name);
    else undeclared += 1;
  }
  if (undeclared > 0) named.push(`(${undeclared} undeclared)`);
  return named.length === 0 ? template : `${template}?${named.join('&')}`;
}

/**
 * Replaces Fastify's request serializer, which writes the raw URL and the caller's `Host` and
 * `Accept-Version` headers. The remote address is the socket's peer (no proxy header is trusted).
 */
export function requestLogFields(request: FastifyRequest): Record<string, unknown> {
  return { method: request.method, url: routeLabel(request), remoteAddress: request.ip };
}

/**
 * Every refusal is logged once with its problem type, whichever code path sent it (the error
 * handler, a stored idempotent refusal, a replay): the line keeps the type and the request id, the
 * caller alone gets the detail. 5xx answers are logged where they are decided, with the error.
 */
export async function logRefusal(
  request: FastifyRequest,
  reply: FastifyReply,
  payload: unknown,
): Promise<unknown> {
  const status = reply.statusCode;
  const contentType = String(reply.getHeader('content-type') ?? '');
  if (status < 400 || status >= 500 || !contentType.startsWith(problemContentType)) return payload;
  if (typeof payload !== 'string') return payload;
  const problem = problemType(payload);
  request.log.info({ problem, status }, 'request refused');
  return payload;
}

function problemType(payload: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(payload);
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      'type' in parsed &&
      typeof parsed.type === 'string'
    ) {
      return parsed.type;
    }
  } catch {
    // A problem body we did not build (none today): the status alone is logged.
  }
  return undefined;
}

/**
 * Fastify's fallback lines (its default error handler, used only if ours throws; its 404 handler,
 * replaced by ours; a failed `writeHead`) use the error's message or the raw URL as the line's
 * message. These keep a fixed message and leave the error to the `err` serializer.
 */
export class RequestLogController extends LogController {
  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (reply.statusCode >= 500)
      reply.log.error({ req: request, res: reply, err: error }, 'error handler failed');
    else reply.log.info({ res: reply, err: error }, 'request refused by the default error handler');
  }

  override routeNotFound(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.info({ req: request }, 'route not found');
  }

  override writeHeadError(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    reply.log.warn({ req: request, res: reply, err: error }, 'writing the response head failed');
  }
}
