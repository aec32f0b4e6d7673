import type { Approvals, ProposalAction, ProposalView } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { type Controls, selectControls, updatePaymentsMode, updatePayoutsFrozen } from './data.ts';

export type Actor = { name: string; requestId?: string };

/**
 * The read_only kill switch: every new money movement calls this inside its own transaction
 * before writing. Reads, webhooks for existing references and settlement of already-accepted
 * payouts do not call it, so they continue.
 */
export async function assertMoneyMovementAllowed(db: Executor): Promise<void> {
  const controls = await selectControls(db);
  if (controls.paymentsMode === 'read_only') {
    throw new DomainError(
      'payments/read-only',
      'payments are in read_only mode: no new money movement is accepted',
      {
        since: controls.updatedAt.toISOString(),
      },
    );
  }
}

/** The payout freeze: accepted payouts stay queued and the settlement engine submits nothing. */
export async function isPayoutSubmissionFrozen(db: Executor): Promise<boolean> {
  return (await selectControls(db)).payoutsFrozen;
}

export async function readControls(db: Executor): Promise<Controls> {
  return selectControls(db);
}

/** Emergency brakes: one operator may pull them; each change is audited. */
export async function enterReadOnly(sql: Sql, actor: Actor, reason: string): Promise<Controls> {
  return sql.begin(async (tx) => {
    const before = await selectControls(tx);
    if ((await updatePaymentsMode(tx, 'read_only', actor.name, reason)) === 1) {
      await audit(tx, actor, 'controls.read_only', before, reason);
    }
    return selectControls(tx);
  });
}

export async function freezePayouts(sql: Sql, actor: Actor, reason: string): Promise<Controls> {
  return sql.begin(async (tx) => {
    const before = await selectControls(tx);
    if ((await updatePayoutsFrozen(tx, true, actor.name, reason)) === 1) {
      await audit(tx, actor, 'controls.freeze_payouts', before, reason);
    }
    return selectControls(tx);
  });
}

async function audit(
  db: Executor,
  actor: Actor,
  action: string,
  before: Controls,
  reason: string,
): Promise<void> {
  const after = await selectControls(db);
  await appendAudit(db, {
    actor: actor.name,
    action,
    subjectType: 'payment_controls',
    subjectId: 'singleton',
    before: { paymentsMode: before.paymentsMode, payoutsFrozen: before.payoutsFrozen },
    after: { paymentsMode: after.paymentsMode, payoutsFrozen: after.payoutsFrozen, reason },
    requestId: actor.requestId,
  });
}

export const restoreStandardAction = 'controls.restore_standard';
export const unfreezePayoutsAction = 'controls.unfreeze_payouts';

function emptyPayload(payload: unknown): Record<string, unknown> {
  if (payload === null || typeof payload !== 'object' || Object.keys(payload).length > 0) {
    throw new DomainError('request/validation', 'this action takes no payload');
  }
  return {};
}

/** Releasing a brake moves money again, so it takes a proposal and a second admin. */
export function controlActions(): ProposalAction[] {
  return [
    {
      name: restoreStandardAction,
      approvalsRequired: 1,
      validate: emptyPayload,
      execute: async (tx, _payload, context) => {
        const before = await selectControls(tx);
        const changed = await updatePaymentsMode(
          tx,
          'standard',
          context.approvers.join(','),
          `proposal ${context.proposalId}`,
        );
        if (changed === 1)
          await audit(
            tx,
            { name: context.approvers.join(','), requestId: context.requestId },
            'controls.standard',
            before,
            `proposal ${context.proposalId}`,
          );
        return { paymentsMode: 'standard', changed: changed === 1 };
      },
    },
    {
      name: unfreezePayoutsAction,
      approvalsRequired: 1,
      validate: emptyPayload,
      execute: async (tx, _payload, context) => {
        const before = await selectControls(tx);
        const changed = await updatePayoutsFrozen(
          tx,
          false,
          context.approvers.join(','),
          `proposal ${context.proposalId}`,
        );
        if (changed === 1)
          await audit(
            tx,
            { name: context.approvers.join(','), requestId: context.requestId },
            'controls.unfreeze_payouts',
            before,
            `proposal ${context.proposalId}`,
          );
        return { payoutsFrozen: false, changed: changed === 1 };
      },
    },
  ];
}

export async function proposeRelease(
  sql: Sql,
  approvals: Approvals,
  action: typeof restoreStandardAction | typeof unfreezePayoutsAction,
  actor: Actor,
  reason: string,
): Promise<ProposalView> {
  return sql.begin((tx) =>
    approvals.propose(tx, { action, payload: {}, proposer: actor.name, reason, requestId: actor.requestId }),
  );
}
