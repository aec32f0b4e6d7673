import type { Approvals, Payload, ProposalAction } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import { formatAmount } from '../money/money.ts';
import type { Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import { enqueueJob } from '../platform/jobs.ts';
import { type PayoutRow, sumPayoutsSince, transitionPayouts } from './data.ts';

export const approveLargeAction = 'payouts.approve_large';
/** The window of the per-source rolling total. */
export const dailyWindowMs = 86_400_000;

/**
 * The two-person rule for large payouts (docs/payouts.md, Large payouts): per asset code, a
 * payout above `thresholds` or taking its source's rolling 24 h total above `dailyTotals` waits
 * in `pending_approval`. Amounts are decimal strings, read in the asset's precision at use.
 */
export type PayoutApprovalPolicy = {
  approvals: Approvals;
  thresholds: ReadonlyMap<string, string>;
  dailyTotals: ReadonlyMap<string, string>;
};

/** Why this payout needs a second admin, or undefined when it does not. */
export async function approvalReason(
  tx: Tx,
  policy: PayoutApprovalPolicy,
  payout: { sourceAccountId: string; asset: string; amountMinor: bigint; precision: number },
): Promise<string | undefined> {
  const threshold = policy.thresholds.get(payout.asset);
  if (threshold !== undefined && payout.amountMinor > parsePositiveAmount(threshold, payout.precision)) {
    return `above the approval threshold of ${threshold} ${payout.asset}`;
  }
  const daily = policy.dailyTotals.get(payout.asset);
  if (daily === undefined) return undefined;
  const since = new Date(Date.now() - dailyWindowMs);
  const totalMinor = (await sumPayoutsSince(tx, payout.sourceAccountId, since)) + payout.amountMinor;
  if (totalMinor <= parsePositiveAmount(daily, payout.precision)) return undefined;
  return `takes the source's 24 h total to ${formatAmount(totalMinor, payout.precision)}, above ${daily} ${payout.asset}`;
}

export type ApproveLargePayload = { payoutId: string };

function validateApproveLarge(payload: unknown): ApproveLargePayload {
  const candidate = payload as Partial<ApproveLargePayload> | null;
  if (typeof candidate?.payoutId !== 'string' || !isUuid(candidate.payoutId)) {
    throw new DomainError('request/validation', 'approving a large payout needs its payoutId');
  }
  return { payoutId: candidate.payoutId };
}

/**
 * Approving moves the payout into the settlement queue, in the approving transaction; a rejected
 * or expired proposal refunds it (`refund`, given by the service to avoid an import cycle).
 */
export function approveLargeProposalAction(
  settleTask: string,
  getPayout: (tx: Tx, id: string) => Promise<PayoutRow>,
  refund: (tx: Tx, payout: PayoutRow, actor: string, reason: string) => Promise<boolean>,
): ProposalAction {
  return {
    name: approveLargeAction,
    approvalsRequired: 1,
    validate: (payload) => validateApproveLarge(payload) as unknown as Payload,
    execute: async (tx, payload, context) => {
      const { payoutId } = validateApproveLarge(payload);
      const actor = context.approvers.join(',');
      const moved = await transitionPayouts(tx, [payoutId], 'approval_granted', {
        actor,
        reason: `proposal ${context.proposalId}`,
      });
      if (moved.length !== 1) {
        const payout = await getPayout(tx, payoutId);
        throw new DomainError('payouts/not-pending-approval', `payout ${payoutId} is ${payout.state}`);
      }
      await enqueueJob(tx, settleTask, {}, { jobKey: settleTask });
      await appendAudit(tx, {
        actor,
        action: 'payout.approved',
        subjectType: 'payout',
        subjectId: payoutId,
        before: { state: 'pending_approval' },
        after: { state: 'accepted', proposalId: context.proposalId, proposer: context.proposer },
        requestId: context.requestId,
      });
      return { payoutId, state: 'accepted' };
    },
    closed: async (tx, payload, context) => {
      const { payoutId } = validateApproveLarge(payload);
      const payout = await getPayout(tx, payoutId);
      if (payout.state !== 'pending_approval') return;
      const reason = `proposal ${context.proposalId} ${context.outcome}`;
      if (!(await refund(tx, payout, context.actor, reason))) return;
      await appendAudit(tx, {
        actor: context.actor,
        action: 'payout.approval_refused',
        subjectType: 'payout',
        subjectId: payoutId,
        before: { state: 'pending_approval' },
        after: { state: 'cancelled', proposalId: context.proposalId, outcome: context.outcome },
        requestId: context.requestId,
      });
    },
  };
}
