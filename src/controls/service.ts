import type { Approvals, ProposalAction, ProposalView } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import { recordOnOpenIncidents } from '../incidents/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql, Tx } from '../platform/db/types.ts';
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
  return withTransaction(sql, async (tx) => {
    const before = await selectControls(tx);
    if ((await updatePaymentsMode(tx, 'read_only', actor.name, reason)) === 1) {
      await audit(tx, actor, 'controls.read_only', before, reason);
    }
    return selectControls(tx);
  });
}

export async function freezePayouts(sql: Sql, actor: Actor, reason: string): Promise<Controls> {
  return withTransaction(sql, async (tx) => {
    const before = await selectControls(tx);
    if ((await updatePayoutsFrozen(tx, true, actor.name, reason)) === 1) {
      await audit(tx, actor, 'controls.freeze_payouts', before, reason);
    }
    return selectControls(tx);
  });
}

/**
 * The audit row and, on every open incident, the timeline event of one change, in the change's
 * transaction: an incident's timeline shows each brake pulled or released while it was open.
 */
async function audit(tx: Tx, actor: Actor, action: string, before: Controls, reason: string): Promise<void> {
  const after = await selectControls(tx);
  await appendAudit(tx, {
    actor: actor.name,
    action,
    subjectType: 'payment_controls',
    subjectId: 'singleton',
    before: { paymentsMode: before.paymentsMode, payoutsFrozen: before.payoutsFrozen },
    after: { paymentsMode: after.paymentsMode, payoutsFrozen: after.payoutsFrozen, reason },
    requestId: actor.requestId,
  });
  const event =
    before.paymentsMode !== after.paymentsMode
      ? {
          kind: 'payments_mode_changed' as const,
          summary: `payments mode ${before.paymentsMode} → ${after.paymentsMode}: ${reason}`,
          detail: { from: before.paymentsMode, to: after.paymentsMode, reason },
        }
      : {
          kind: 'payouts_freeze_changed' as const,
          summary: `${after.payoutsFrozen ? 'payouts frozen' : 'payouts unfrozen'}: ${reason}`,
          detail: { frozen: after.payoutsFrozen, reason },
        };
  await recordOnOpenIncidents(
    tx,
    { ...event, source: 'system' },
    { name: actor.name, requestId: actor.requestId },
  );
}

export const restoreStandardAction = 'controls.restore_standard';
export const unfreezePayoutsAction = 'controls.unfreeze_payouts';

function emptyPayload(payload: unknown): Record<string, unknown> {
  if (payload === null || typeof payload !== 'object' || Object.keys(payload).length > 0) {
    throw new DomainError('request/validation', 'this action takes no payload');
  }
  return {};
}

/** A release action: runs `release`, audits the change under `auditAction`, reports `result`. */
function releaseAction(
  name: string,
  auditAction: string,
  release: (tx: Tx, by: string, reason: string) => Promise<number>,
  result: Record<string, unknown>,
): ProposalAction {
  return {
    name,
    approvalsRequired: 1,
    validate: emptyPayload,
    execute: async (tx, _payload, context) => {
      const before = await selectControls(tx);
      const by = context.approvers.join(',');
      const reason = `proposal ${context.proposalId}`;
      const changed = (await release(tx, by, reason)) === 1;
      if (changed) await audit(tx, { name: by, requestId: context.requestId }, auditAction, before, reason);
      return { ...result, changed };
    },
  };
}

/** Releasing a brake moves money again, so it takes a proposal and a second admin. */
export function controlActions(): ProposalAction[] {
  return [
    releaseAction(
      restoreStandardAction,
      'controls.standard',
      (tx, by, reason) => updatePaymentsMode(tx, 'standard', by, reason),
      { paymentsMode: 'standard' },
    ),
    releaseAction(
      unfreezePayoutsAction,
      'controls.unfreeze_payouts',
      (tx, by, reason) => updatePayoutsFrozen(tx, false, by, reason),
      { payoutsFrozen: false },
    ),
  ];
}

export async function proposeRelease(
  sql: Sql,
  approvals: Approvals,
  action: typeof restoreStandardAction | typeof unfreezePayoutsAction,
  actor: Actor,
  reason: string,
): Promise<ProposalView> {
  return withTransaction(sql, (tx) =>
    approvals.propose(tx, { action, payload: {}, proposer: actor.name, reason, requestId: actor.requestId }),
  );
}
