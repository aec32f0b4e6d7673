import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { assert } from '../platform/assert.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { problemContentType } from '../platform/http/problems.ts';
import {
  fingerprint,
  idempotencyKeyLengthMax,
  problemBody,
  runIdempotent,
  type StoredResponse,
} from './idempotency.ts';

/** The header schema of every money-moving POST; presence is checked by `sendIdempotent`. */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: idempotencyKeyLengthMax })),
});

/**
 * Wraps a money-moving POST in the idempotency protocol and sends what it returns (or replays),
 * with problem+json for stored refusals. The key is scoped to the caller (the token's subject)
 * and the fingerprint covers the method, the concrete path (template and parameters) and the
 * canonical body: the same key on another resource is a reuse, never a replay.
 */
export async function sendIdempotent(
  sql: Sql,
  request: FastifyRequest,
  reply: FastifyReply,
  work: (tx: Tx) => Promise<StoredResponse>,
): Promise<FastifyReply> {
  const key = request.headers['idempotency-key'];
  if (typeof key !== 'string' || key.length === 0) {
    throw new DomainError(
      'idempotency/key-required',
      'send an Idempotency-Key header with every money-moving request',
    );
  }
  const route = request.routeOptions.url;
  assert(route !== undefined, 'sendIdempotent runs inside a matched route');
  const params = (request.params ?? {}) as Readonly<Record<string, string>>;
  const scope = {
    caller: request.principal?.subject ?? '',
    key,
    fingerprint: fingerprint(request.method, route, params, request.body),
  };
  const result = await runIdempotent(sql, scope, work, (error) =>
    problemBody(error, request.url, request.id),
  );
  if (result.replayed) reply.header('idempotent-replayed', 'true');
  reply.type(result.status >= 400 ? problemContentType : 'application/json; charset=utf-8');
  return reply.code(result.status).send(result.body);
}
