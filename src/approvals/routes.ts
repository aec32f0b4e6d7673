import { Type } from 'typebox';
import { adminRoles, staffRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { Uuid } from '../platform/ids.ts';
import { type Approvals, listPageMax, type ProposalView } from './engine.ts';
import { ProposalSchema, ProposalStateSchema, ReasonSchema } from './schemas.ts';

const IdParams = Type.Object({ id: Uuid() });

/** Dates leave as ISO strings; the schema's serializer would do it too, but explicitly is clearer. */
export function proposalJson(view: ProposalView) {
  return {
    ...view,
    payload: view.payload as Record<string, unknown>,
    result: (view.result ?? null) as Record<string, unknown> | null,
    createdAt: view.createdAt.toISOString(),
    expiresAt: view.expiresAt.toISOString(),
    decidedAt: view.decidedAt?.toISOString() ?? null,
    executedAt: view.executedAt?.toISOString() ?? null,
    reviews: view.reviews.map((review) => ({ ...review, createdAt: review.createdAt.toISOString() })),
  };
}

export function approvalRoutes(sql: Sql, approvals: Approvals) {
  return (app: App): void => {
    app.get(
      '/v1/approvals',
      {
        config: { access: staffRoles },
        schema: {
          tags: ['approvals'],
          querystring: Type.Object({
            state: Type.Optional(ProposalStateSchema),
            limit: Type.Integer({ minimum: 1, maximum: listPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(ProposalSchema),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
          },
        },
      },
      async (request) => {
        const { state, limit, cursor } = request.query;
        const rows = await approvals.list(sql, {
          state,
          limit,
          after: cursor === undefined ? undefined : decodeCursor(cursor),
        });
        const last = rows[rows.length - 1];
        return {
          items: rows.map((row) => proposalJson({ ...row, reviews: [] })),
          nextCursor: rows.length === limit && last ? encodeCursor(last) : null,
        };
      },
    );

    app.get(
      '/v1/approvals/:id',
      {
        config: { access: staffRoles },
        schema: { tags: ['approvals'], params: IdParams, response: { 200: ProposalSchema } },
      },
      async (request) => proposalJson(await approvals.show(sql, request.params.id)),
    );

    app.post(
      '/v1/approvals/:id/approve',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['approvals'],
          params: IdParams,
          body: Type.Object(
            { payloadHash: Type.String({ pattern: '^[0-9a-f]{64}$' }), reason: Type.Optional(ReasonSchema) },
            { additionalProperties: false },
          ),
          response: { 200: ProposalSchema },
        },
      },
      async (request) =>
        proposalJson(
          await approvals.approve(sql, {
            id: request.params.id,
            reviewer: request.principal?.subject ?? '',
            payloadHash: request.body.payloadHash,
            reason: request.body.reason,
            requestId: request.id,
          }),
        ),
    );

    app.post(
      '/v1/approvals/:id/reject',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['approvals'],
          params: IdParams,
          body: Type.Object({ reason: ReasonSchema }, { additionalProperties: false }),
          response: { 200: ProposalSchema },
        },
      },
      async (request) =>
        proposalJson(
          await approvals.reject(sql, {
            id: request.params.id,
            reviewer: request.principal?.subject ?? '',
            reason: request.body.reason,
            requestId: request.id,
          }),
        ),
    );
  };
}
