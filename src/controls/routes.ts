import { Type } from 'typebox';
import type { Approvals } from '../approvals/engine.ts';
import { proposalJson } from '../approvals/routes.ts';
import { ProposalSchema, ReasonSchema } from '../approvals/schemas.ts';
import { adminRoles, operatorRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import type { Controls } from './data.ts';
import {
  enterReadOnly,
  freezePayouts,
  proposeRelease,
  readControls,
  restoreStandardAction,
  unfreezePayoutsAction,
} from './service.ts';

const ControlsSchema = Type.Object({
  paymentsMode: Type.Union([Type.Literal('standard'), Type.Literal('read_only')]),
  payoutsFrozen: Type.Boolean(),
  updatedAt: Type.String({ format: 'date-time' }),
  updatedBy: Type.String(),
  reason: Type.String(),
});
const ReasonBody = Type.Object({ reason: ReasonSchema }, { additionalProperties: false });

function controlsJson(controls: Controls) {
  return { ...controls, updatedAt: controls.updatedAt.toISOString() };
}

/**
 * Kill switches. Pulling a brake (read_only, freeze) takes one operator: it is the emergency
 * action. Releasing one (standard, unfreeze) moves money again, so it only creates a proposal
 * that a second admin must approve through /v1/approvals.
 */
export function controlRoutes(sql: Sql, approvals: Approvals) {
  return (app: App): void => {
    app.get(
      '/internal/modes',
      {
        config: { access: operatorRoles },
        schema: { tags: ['controls'], response: { 200: ControlsSchema } },
      },
      async () => controlsJson(await readControls(sql)),
    );
    const brakes = [
      { path: '/internal/modes/read-only', pull: enterReadOnly },
      { path: '/internal/modes/freeze', pull: freezePayouts },
    ] as const;
    for (const brake of brakes) {
      app.post(
        brake.path,
        {
          config: { access: operatorRoles },
          schema: { tags: ['controls'], body: ReasonBody, response: { 200: ControlsSchema } },
        },
        async (request) =>
          controlsJson(
            await brake.pull(
              sql,
              { name: request.principal?.subject ?? '', requestId: request.id },
              request.body.reason,
            ),
          ),
      );
    }
    const releases = [
      { path: '/internal/modes/standard', action: restoreStandardAction },
      { path: '/internal/modes/unfreeze', action: unfreezePayoutsAction },
    ] as const;
    for (const release of releases) {
      app.post(
        release.path,
        {
          config: { access: adminRoles },
          schema: { tags: ['controls'], body: ReasonBody, response: { 202: ProposalSchema } },
        },
        async (request, reply) => {
          const actor = { name: request.principal?.subject ?? '', requestId: request.id };
          const proposal = await proposeRelease(sql, approvals, release.action, actor, request.body.reason);
          return reply.code(202).send(proposalJson(proposal));
        },
      );
    }
  };
}
