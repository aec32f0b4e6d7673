import { Type } from 'typebox';
import type { Approvals } from '../approvals/engine.ts';
import { proposalJson } from '../approvals/routes.ts';
import { ProposalSchema, ReasonSchema } from '../approvals/schemas.ts';
import { IdempotencyHeaders, sendIdempotent } from '../idempotency/http.ts';
import { adminRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { Uuid } from '../platform/ids.ts';
import { proposeReversal } from './reversals.ts';

export function reversalRoutes(sql: Sql, approvals: Approvals) {
  return (app: App): void => {
    app.post(
      '/v1/journals/:id/reversals',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['ledger'],
          description:
            'Proposes reversing a posted transfer or adjustment; a second admin must approve it in /v1/approvals.',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: Type.Object({ reason: ReasonSchema }, { additionalProperties: false }),
          response: {
            202: ProposalSchema,
            400: problemResponse('the body or id does not match the schema, or no Idempotency-Key'),
            404: problemResponse('no journal has this id (ledger/journal-not-found)'),
            409: problemResponse(
              'the journal was reversed already (ledger/already-reversed), or the Idempotency-Key is in flight',
            ),
            422: problemResponse(
              'the journal is not a transfer or adjustment (ledger/not-reversible), or the Idempotency-Key was reused with another body',
            ),
          },
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => {
          const proposal = await proposeReversal(tx, approvals, {
            journalId: request.params.id,
            reason: request.body.reason,
            proposer: request.principal?.subject ?? '',
            requestId: request.id,
          });
          return { status: 202, body: proposalJson(proposal) };
        }),
    );
  };
}
