import { Type } from 'typebox';
import { ReasonSchema } from '../approvals/schemas.ts';
import { apiKeyScopes } from '../platform/auth/api-keys-data.ts';
import { adminRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { Uuid } from '../platform/ids.ts';
import {
  apiKeyExpiryDaysDefault,
  apiKeyExpiryDaysMax,
  apiKeyNamePattern,
  apiKeysPageMax,
  apiKeyView,
  createApiKey,
  listApiKeys,
  revokeApiKey,
} from './api-keys.ts';

const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const ApiKeySchema = Type.Object({
  id: Uuid(),
  name: Type.String(),
  scope: Type.String({ description: apiKeyScopes.join(' or '), examples: ['service'] }),
  createdBy: Type.String(),
  createdAt: DateTime,
  expiresAt: DateTime,
  lastUsedAt: Nullable(Type.String({ format: 'date-time', description: 'written at most once a minute' })),
  revokedAt: Nullable(DateTime),
  revokedBy: Nullable(Type.String()),
  revokedReason: Nullable(Type.String()),
});

const refusals = {
  400: problemResponse('the body, path or query does not match the schema'),
  401: problemResponse('no valid bearer token (auth/unauthenticated)'),
  403: problemResponse('the caller is not an admin (auth/forbidden)'),
};

/**
 * API keys for integrations (docs/controls.md, "API keys"): admins create, list and revoke them. The
 * key itself is in the creation response only; nothing can show it again.
 */
export function apiKeyRoutes(sql: Sql) {
  return (app: App): void => {
    app.post(
      '/internal/api-keys',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['access'],
          description: 'Creates an API key; the response holds the key, shown this once.',
          body: Type.Object(
            {
              name: Type.String({
                pattern: apiKeyNamePattern.source,
                description: 'the integration, e.g. billing-sync',
              }),
              scope: Type.Union(apiKeyScopes.map((scope) => Type.Literal(scope))),
              expiresInDays: Type.Optional(
                Type.Integer({ minimum: 1, maximum: apiKeyExpiryDaysMax, default: apiKeyExpiryDaysDefault }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            201: Type.Intersect([
              ApiKeySchema,
              Type.Object({
                key: Type.String({ description: 'sdk_live_…: store it now, it is not shown again' }),
              }),
            ]),
            ...refusals,
            409: problemResponse('api-keys/too-many: revoke unused keys first'),
          },
        },
      },
      async (request, reply) => {
        const created = await createApiKey(sql, request.body, {
          name: request.principal?.subject ?? '',
          requestId: request.id,
        });
        return reply.code(201).send(created);
      },
    );
    app.get(
      '/internal/api-keys',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['access'],
          description: 'Every API key (never its secret), newest first, revoked and expired ones included.',
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: apiKeysPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({ items: Type.Array(ApiKeySchema), nextCursor: Nullable(Type.String()) }),
            ...refusals,
          },
        },
      },
      async (request) => {
        const { limit, cursor } = request.query;
        const rows = await listApiKeys(sql, {
          after: cursor === undefined ? undefined : decodeCursor(cursor),
          limit,
        });
        const last = rows.at(-1);
        return {
          items: rows.map(apiKeyView),
          nextCursor: rows.length === limit && last ? encodeCursor(last) : null,
        };
      },
    );
    app.post(
      '/internal/api-keys/:id/revoke',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['access'],
          description:
            'Revokes the key: refused on every instance within seconds. Revoking twice changes nothing.',
          params: Type.Object({ id: Uuid() }),
          body: Type.Object({ reason: ReasonSchema }, { additionalProperties: false }),
          response: {
            200: ApiKeySchema,
            ...refusals,
            404: problemResponse('api-keys/not-found'),
          },
        },
      },
      async (request) =>
        revokeApiKey(
          sql,
          request.params.id,
          { name: request.principal?.subject ?? '', requestId: request.id },
          request.body.reason,
        ),
    );
  };
}
