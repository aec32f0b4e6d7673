import type { Approvals, Payload, ProposalAction, ProposalView } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import { assertMoneyMovementAllowed } from '../controls/service.ts';
import { getAccount, postJournal } from '../ledger/service.ts';
import { formatAmount, parseAmount } from '../money/money.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';

export const adjustmentAction = 'ledger.adjustment';
export const adjustmentLegsMax = 20;
export const evidenceRefLengthMax = 500;

export type AdjustmentLeg = { accountId: string; amount: string };
export type AdjustmentPayload = { entries: AdjustmentLeg[]; evidenceRef: string };

/** Shape check of a stored payload; amounts and accounts are checked against the ledger separately. */
function validatePayload(payload: unknown): AdjustmentPayload {
  const candidate = payload as Partial<AdjustmentPayload> | null;
  const entries = candidate?.entries;
  if (
    !Array.isArray(entries) ||
    entries.length < 2 ||
    entries.length > adjustmentLegsMax ||
    typeof candidate?.evidenceRef !== 'string' ||
    candidate.evidenceRef.length === 0 ||
    candidate.evidenceRef.length > evidenceRefLengthMax
  ) {
    throw new DomainError(
      'request/validation',
      `an adjustment needs 2 to ${adjustmentLegsMax} entries and an evidenceRef`,
    );
  }
  for (const entry of entries) {
    if (
      typeof entry?.accountId !== 'string' ||
      !isUuid(entry.accountId) ||
      typeof entry.amount !== 'string'
    ) {
      throw new DomainError(
        'request/validation',
        'each entry needs an accountId (uuid) and an amount (decimal string)',
      );
    }
  }
  return {
    entries: entries.map((entry) => ({ accountId: entry.accountId, amount: entry.amount })),
    evidenceRef: candidate.evidenceRef,
  };
}

/** Reads each leg against its account's precision; signed, non-zero; the ledger checks the balance. */
async function legsInMinor(
  db: Executor,
  payload: AdjustmentPayload,
): Promise<{ accountId: string; amountMinor: bigint; precision: number }[]> {
  const legs = [];
  for (const entry of payload.entries) {
    const account = await getAccount(db, entry.accountId);
    const parsed = parseAmount(entry.amount, { precision: account.precision, allowNegative: true });
    if (!parsed.ok)
      throw new DomainError('money/invalid-format', `entry for ${entry.accountId}: ${parsed.detail}`);
    legs.push({ accountId: entry.accountId, amountMinor: parsed.minor, precision: account.precision });
  }
  const sums = new Map<string, bigint>();
  for (const leg of legs) {
    const asset = (await getAccount(db, leg.accountId)).asset;
    sums.set(asset, (sums.get(asset) ?? 0n) + leg.amountMinor);
  }
  for (const [asset, sum] of sums) {
    if (sum !== 0n) throw new DomainError('ledger/unbalanced', `the entries do not sum to zero in ${asset}`);
  }
  return legs;
}

/**
 * A manual ledger adjustment never moves money when it is asked for: it becomes a proposal, and
 * only a second admin's approval posts it, as one balanced journal transaction that references
 * the proposal.
 */
export async function proposeAdjustment(
  tx: Tx,
  approvals: Approvals,
  input: { payload: AdjustmentPayload; reason: string; proposer: string; requestId: string },
): Promise<ProposalView> {
  await assertMoneyMovementAllowed(tx);
  const payload = validatePayload(input.payload);
  const legs = await legsInMinor(tx, payload);
  const normalised: AdjustmentPayload = {
    entries: legs.map((leg) => ({
      accountId: leg.accountId,
      amount: formatAmount(leg.amountMinor, leg.precision),
    })),
    evidenceRef: payload.evidenceRef,
  };
  return approvals.propose(tx, {
    action: adjustmentAction,
    payload: normalised,
    proposer: input.proposer,
    reason: input.reason,
    requestId: input.requestId,
  });
}

export function adjustmentProposalAction(): ProposalAction {
  return {
    name: adjustmentAction,
    approvalsRequired: 1,
    validate: (payload) => validatePayload(payload) as unknown as Payload,
    execute: async (tx, payload, context) => {
      await assertMoneyMovementAllowed(tx);
      const legs = await legsInMinor(tx, payload as unknown as AdjustmentPayload);
      const { journalId } = await postJournal(tx, {
        kind: 'adjustment',
        entries: legs.map((leg) => ({ accountId: leg.accountId, amountMinor: leg.amountMinor })),
        reference: context.proposalId,
        requestId: context.requestId,
      });
      await appendAudit(tx, {
        actor: context.approvers.join(','),
        action: 'ledger.adjusted',
        subjectType: 'journal_transaction',
        subjectId: journalId,
        after: { proposalId: context.proposalId, proposer: context.proposer, approvers: context.approvers },
        requestId: context.requestId,
      });
      return { journalId };
    },
  };
}
