import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  DatabaseUnavailableError,
  DomainError,
  type Problem,
  type ProblemType,
  problemCatalogue,
  problemFor,
} from '../errors.ts';
import { httpDatabaseUnavailable } from '../metrics.ts';
import { fieldErrors } from './validation.ts';

export const problemContentType = 'application/problem+json';

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  // Set here as well as in onSend: refusals before routing (frameworkErrors) run no hooks.
  return reply
    .code(problem.status)
    .header('x-request-id', reply.request.id)
    .type(problemContentType)
    .send(JSON.stringify({ ...problem, instance: reply.request.url, requestId: reply.request.id }));
}

const fastifyCodeToProblem: Readonly<Record<string, ProblemType>> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'request/unsupported-media-type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'request/body-too-large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'request/malformed-body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'request/malformed-body',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'request/malformed-body',
};

/** Seconds a caller is told to wait before retrying a 503 `service/unavailable`. */
export const retryAfterSeconds = 1;

/**
 * What a PostgreSQL error that reaches the handler means to the caller, by SQLSTATE: an exact code
 * first, then its class (the first two characters). Schemas refuse bad input before it reaches
 * the database, so these are the last line: the caller gets a precise 4xx or a 503 to retry, and
 * a 500 is left for what is really a bug (syntax 42, internal XX, a trigger's raise P0…).
 */
const sqlstateProblems: Readonly<Record<string, ProblemType>> = {
  '23505': 'request/conflict', // unique_violation
  '23P01': 'request/conflict', // exclusion_violation
  '55P03': 'service/unavailable', // lock_not_available (lock_timeout)
};
const sqlstateClassProblems: Readonly<Record<string, ProblemType>> = {
  '08': 'service/unavailable', // connection exception
  '22': 'request/invalid-value', // data exception: NUL in text, a time out of range, a bad uuid…
  '23': 'request/constraint-violated', // integrity constraint: foreign key, not null, check
  '40': 'service/unavailable', // serialization failure or deadlock left after withTransaction's retries
  '53': 'service/unavailable', // insufficient resources: disk, memory, connections
  '54': 'request/invalid-value', // program limit exceeded: a value too large for an index row
  '57': 'service/unavailable', // operator intervention: statement timeout, shutdown
};
/** postgres.js's own codes for a connection it lost or could not open (no SQLSTATE). */
const connectionErrorCodes: ReadonlySet<string> = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
]);
const sqlstatePattern = /^[0-9A-Z]{5}$/;

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

/** The problem type for a database failure, or undefined when it is not one (or is a bug). */
export function databaseProblem(error: unknown): ProblemType | undefined {
  // Thrown by the multi-host socket (src/platform/db/multi-host.ts) while no host accepts writes.
  if (error instanceof DatabaseUnavailableError) return 'service/unavailable';
  const code = codeOf(error);
  if (code === undefined) return undefined;
  if (error instanceof Error && error.name === 'PostgresError' && sqlstatePattern.test(code)) {
    return sqlstateProblems[code] ?? sqlstateClassProblems[code.slice(0, 2)];
  }
  return connectionErrorCodes.has(code) ? 'service/unavailable' : undefined;
}

const databaseDetails: Partial<Record<ProblemType, string>> = {
  'request/invalid-value':
    'a value in the request cannot be stored; check text for control characters and sizes',
  'request/conflict': 'a record with the same identity already exists',
  'request/constraint-violated': 'the request refers to a record that does not exist or breaks a stored rule',
  'service/unavailable': 'the database is unavailable or busy; retry after the Retry-After delay',
};

/**
 * The client went away while its body was being read: nobody is left to answer. The request stream
 * ended without its end (`readableAborted`); `destroyed` alone is no sign, since a body read to its
 * end is destroyed too, and postgres.js reports a dropped database connection as `ECONNRESET`.
 */
function isClientDisconnect(error: FastifyError, request: FastifyRequest): boolean {
  return (error.code === 'ECONNRESET' || error.message === 'aborted') && request.raw.readableAborted;
}

/**
 * Every error leaves as RFC 9457 problem+json. Domain errors and request errors carry their
 * catalogue type (the refusal is logged by type, not detail: see request-log.ts); database
 * failures are classified by SQLSTATE (a 4xx for what the input caused, a 503 with Retry-After for
 * what passes); anything else is a programmer or infrastructure failure: it is logged with its
 * error (see `serializeError`) and the caller gets a generic 500 with the request id, never a
 * stack or SQL.
 */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof DomainError) {
    if (error.type === 'service/unavailable') reply.header('retry-after', String(retryAfterSeconds));
    return sendProblem(reply, problemFor(error.type, error.message, { ...error.extensions }));
  }
  if (error.validation) {
    // Fastify calls the query part `querystring`; the documented field names say `query.limit`.
    const context = error.validationContext ?? 'request';
    const part = context === 'querystring' ? 'query' : context;
    const errors = fieldErrors(error.validation, part);
    const fields = [...new Set(errors.map((item) => item.field))];
    return sendProblem(reply, problemFor('request/validation', `invalid ${fields.join(', ')}`, { errors }));
  }
  if (isClientDisconnect(error, request)) {
    request.log.info({ code: error.code }, 'client disconnected before the request was read');
    return sendProblem(reply, problemFor('request/malformed-body', 'the client closed the connection'));
  }
  const mapped = error.code ? fastifyCodeToProblem[error.code] : undefined;
  if (mapped) return sendProblem(reply, problemFor(mapped, error.message));
  if (error instanceof SyntaxError && error.statusCode === 400) {
    return sendProblem(reply, problemFor('request/malformed-body', 'the body is not valid JSON'));
  }
  const database = databaseProblem(error);
  if (database !== undefined) {
    const status = problemCatalogue[database].status;
    // Only our own message is logged: a PostgreSQL message can quote the request's values.
    const reason = error instanceof DatabaseUnavailableError ? error.message : undefined;
    request.log[status >= 500 ? 'warn' : 'info'](
      { problem: database, code: error.code, reason },
      'database refused',
    );
    if (database === 'service/unavailable') {
      httpDatabaseUnavailable.inc({ code: codeOf(error) ?? 'unknown' });
      reply.header('retry-after', String(retryAfterSeconds));
    }
    return sendProblem(reply, problemFor(database, databaseDetails[database] ?? ''));
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendProblem(
    reply,
    problemFor('internal', 'An unexpected error occurred. Quote the request id when reporting it.'),
  );
}

export function handleNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendProblem(reply, problemFor('request/not-found', `no route for ${request.method} ${request.url}`));
}

/**
 * Fastify's refusals before a route is found (the `frameworkErrors` option): a URL whose
 * percent-encoding is not UTF-8, a path parameter over `maxParamLength`.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  if (error.code === 'FST_ERR_BAD_URL') {
    return sendProblem(
      reply,
      problemFor('request/malformed-url', 'the URL is not validly percent-encoded UTF-8'),
    );
  }
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return sendProblem(
      reply,
      problemFor('request/uri-too-long', 'a path parameter is longer than this API accepts'),
    );
  }
  return handleError(error, request, reply);
}

const clientErrorDetails = {
  'request/headers-too-large': 'the request headers exceed the server limit (16 KiB)',
  'request/timeout': 'the request was not received within the server timeout',
  'request/malformed':
    'the request is not valid HTTP/1.1 (a control character in a header, a bad request line…)',
} as const satisfies Partial<Record<ProblemType, string>>;

function clientErrorType(code: string | undefined): keyof typeof clientErrorDetails {
  if (code === 'HPE_HEADER_OVERFLOW') return 'request/headers-too-large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request/timeout';
  return 'request/malformed';
}

/**
 * The HTTP server's refusals before Fastify sees a request (the `clientErrorHandler` option, on
 * node's 'clientError' event): headers over the limit, bytes that are not HTTP. There is no
 * request or reply object yet, so the problem+json response is written on the socket by hand,
 * with a fresh request id in the body, the header and the log line.
 */
export function handleClientError(
  this: FastifyInstance,
  error: Error & { code?: string },
  socket: Socket,
): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const type = clientErrorType(error.code);
  const requestId = randomUUID();
  const problem = problemFor(type, clientErrorDetails[type]);
  const body = JSON.stringify({ ...problem, requestId });
  this.log.info({ requestId, problem: type, code: error.code }, 'request refused before parsing');
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\n` +
      'Connection: close\r\n' +
      `Content-Type: ${problemContentType}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${requestId}\r\n\r\n${body}`,
  );
}
