import { Type } from 'typebox';
import type { Approvals } from '../approvals/engine.ts';
import { proposalJson } from '../approvals/routes.ts';
import { ReasonSchema } from '../approvals/schemas.ts';
import { IdempotencyHeaders, sendIdempotent } from '../idempotency/http.ts';
import { adminRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import { adjustmentLegsMax, evidenceRefLengthMax, proposeAdjustment } from './adjustments.ts';

export function adjustmentRoutes(sql: Sql, approvals: Approvals) {
  return (app: App): void => {
    app.post(
      '/v1/adjustments',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['ledger'],
          description:
            'Proposes a balanced manual correction; a second admin must approve it in /v1/approvals.',
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              entries: Type.Array(
                Type.Object(
                  {
                    accountId: Uuid(),
                    amount: Type.String({
                      minLength: 1,
                      maxLength: 41,
                      description: 'signed decimal string',
                    }),
                  },
                  { additionalProperties: false },
                ),
                { minItems: 2, maxItems: adjustmentLegsMax },
              ),
              reason: ReasonSchema,
              evidenceRef: FreeText({ minLength: 1, maxLength: evidenceRefLengthMax }),
            },
            { additionalProperties: false },
          ),
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => {
          const proposal = await proposeAdjustment(tx, approvals, {
            payload: { entries: request.body.entries, evidenceRef: request.body.evidenceRef },
            reason: request.body.reason,
            proposer: request.principal?.subject ?? '',
            requestId: request.id,
          });
          return { status: 202, body: proposalJson(proposal) };
        }),
    );
  };
}
