import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, type Problem, type ProblemType, problemFor } from '../errors.ts';
import { fieldErrors } from './validation.ts';

export const problemContentType = 'application/problem+json';

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply
    .code(problem.status)
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

/**
 * Every error leaves as RFC 9457 problem+json. Domain errors and request errors carry their
 * catalogue type (the refusal is logged by type, not detail: see request-log.ts); anything else
 * is a programmer or infrastructure failure: it is logged with its error (see `serializeError`)
 * and the caller gets a generic 500 with the request id, never a stack or SQL.
 */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof DomainError) {
    return sendProblem(reply, problemFor(error.type, error.message, { ...error.extensions }));
  }
  if (error.validation) {
    const part = error.validationContext ?? 'request';
    const errors = fieldErrors(error.validation, part);
    const fields = [...new Set(errors.map((item) => item.field))];
    return sendProblem(reply, problemFor('request/validation', `invalid ${fields.join(', ')}`, { errors }));
  }
  const mapped = error.code ? fastifyCodeToProblem[error.code] : undefined;
  if (mapped) return sendProblem(reply, problemFor(mapped, error.message));
  if (error instanceof SyntaxError && error.statusCode === 400) {
    return sendProblem(reply, problemFor('request/malformed-body', 'the body is not valid JSON'));
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
