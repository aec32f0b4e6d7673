import { randomUUID } from 'node:crypto';
import type { Approvals, Payload, ProposalAction, ProposalView } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import { assertMoneyMovementAllowed } from '../controls/service.ts';
import { selectAccount, selectSystemAccount } from '../ledger/data.ts';
import { lockAccounts, postJournal } from '../ledger/service.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import { formatAmount } from '../money/money.ts';
import { assert } from '../platform/assert.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import { enqueueJob } from '../platform/jobs.ts';
import { stellarDecimals } from '../stellar/units.ts';
import { emitEvents, payoutFinishedEvent } from '../webhooks/events.ts';
import {
  approvalReason,
  approveLargeAction,
  approveLargeProposalAction,
  type PayoutApprovalPolicy,
} from './approval.ts';
import { type AttemptRow, selectPayoutAttempts } from './attempts-data.ts';
import {
  type HistoryRow,
  insertPayout,
  type PayoutRow,
  payoutWasAttempted,
  selectHistory,
  selectPayout,
  selectPayoutForUpdate,
  transitionPayouts,
} from './data.ts';
import { checkDestinationPayable, type ScreenedDestination } from './destinations.ts';
import { checkDestination, checkMemo, type MemoType } from './memo.ts';
import { manualReviewTransitions } from './metrics.ts';
import type { Transition } from './states.ts';

export const settleTask = 'payouts_settle';
export const resolveAction = 'payouts.resolve';
export const resolveReasonLengthMax = 1_000;
/** Stellar amounts are int64 stroops: seven decimals. */

export type PayoutInput = {
  sourceAccountId: string;
  destination: string;
  asset: string;
  amount: string;
  memo?: { type: MemoType; value?: string };
};

export type Actor = { name: string; requestId: string | undefined };

export type PayoutView = {
  id: string;
  sourceAccountId: string;
  destination: string;
  asset: string;
  amount: string;
  memo: { type: MemoType; value: string | null };
  state: PayoutRow['state'];
  stateReason: string;
  /** The proposal a second admin approves (`payouts.approve_large`); null under the thresholds. */
  approvalProposalId: string | null;
  createdAt: string;
  updatedAt: string;
};

export function payoutView(row: PayoutRow): PayoutView {
  return {
    id: row.id,
    sourceAccountId: row.sourceAccountId,
    destination: row.destination,
    asset: row.asset,
    amount: formatAmount(row.amountMinor, row.precision),
    memo: { type: row.memoType, value: row.memoValue },
    state: row.state,
    stateReason: row.stateReason,
    approvalProposalId: row.approvalProposalId,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

async function clearingAccount(db: Executor, asset: string): Promise<string> {
  const account = await selectSystemAccount(db, 'payout_clearing', asset);
  assert(account, `no payout_clearing account for ${asset}: system accounts missing`);
  return account.id;
}

/**
 * Accepts a payout: the amount leaves the source for `payout_clearing` and settlement is enqueued,
 * all in the caller's transaction. A freeze does not refuse it (the engine holds it); read_only does.
 * `destination` is what was read about the destination before the transaction (destinations.ts).
 * With a `policy`, a payout over an approval threshold waits in `pending_approval` on a proposal
 * (its caller is the proposer, so a second person approves); without one (escrow releases and
 * stream settlements, already governed by their own rules) it is queued at once.
 */
export async function acceptPayout(
  tx: Tx,
  input: PayoutInput,
  actor: Actor,
  destination: ScreenedDestination,
  policy?: PayoutApprovalPolicy,
): Promise<PayoutView> {
  checkDestination(input.destination);
  const memo = checkMemo(input.memo);
  if (input.destination.startsWith('M') && memo.type !== 'none') {
    throw new DomainError(
      'payouts/invalid-memo',
      'a muxed (M…) destination carries its own id: leave the memo out',
    );
  }
  // Read unlocked first (an account's type and asset never change) to find which clearing
  // account to lock with it: both are locked in one call, in the global order (lockAccounts).
  const [, source] = await Promise.all([
    assertMoneyMovementAllowed(tx),
    selectAccount(tx, input.sourceAccountId),
  ]);
  if (!source) throw new DomainError('ledger/account-not-found', `no account ${input.sourceAccountId}`);
  if (source.type !== 'customer' && source.type !== 'merchant') {
    throw new DomainError('payouts/source-not-payable', `account ${source.id} is a ${source.type} account`);
  }
  if (source.asset !== input.asset) {
    throw new DomainError('ledger/asset-mismatch', `the source holds ${source.asset}, not ${input.asset}`);
  }
  const amountMinor = parsePositiveAmount(input.amount, source.precision);
  if (
    source.precision > stellarDecimals &&
    amountMinor % 10n ** BigInt(source.precision - stellarDecimals) !== 0n
  ) {
    throw new DomainError(
      'money/too-many-decimals',
      `Stellar amounts have at most ${stellarDecimals} decimals`,
    );
  }
  checkDestinationPayable(destination, {
    destination: input.destination,
    asset: source.asset,
    amountMinor,
    precision: source.precision,
  });
  const clearing = await clearingAccount(tx, source.asset);
  const locked = await lockAccounts(tx, [source.id, clearing]);
  const id = randomUUID();
  const { journalId } = await postJournal(
    tx,
    {
      kind: 'payout_accept',
      entries: [
        { accountId: source.id, amountMinor: -amountMinor },
        { accountId: clearing, amountMinor },
      ],
      reference: id,
      requestId: actor.requestId,
    },
    locked,
  );
  const waitReason = policy
    ? await approvalReason(tx, policy, { ...source, sourceAccountId: source.id, amountMinor })
    : undefined;
  const proposal =
    policy && waitReason !== undefined
      ? await policy.approvals.propose(tx, {
          action: approveLargeAction,
          payload: { payoutId: id },
          proposer: actor.name,
          reason: `payout ${id} of ${input.amount} ${source.asset} ${waitReason}`,
          requestId: actor.requestId,
        })
      : undefined;
  await insertPayout(tx, {
    id,
    sourceAccountId: source.id,
    asset: source.asset,
    amountMinor,
    destination: input.destination,
    memoType: memo.type,
    memoValue: memo.value,
    createdBy: actor.name,
    requestId: actor.requestId ?? null,
    acceptJournalId: journalId,
    state: proposal ? 'pending_approval' : 'accepted',
    stateReason: proposal ? `waiting for a second admin: ${waitReason}` : 'accepted',
    approvalProposalId: proposal?.id ?? null,
  });
  await appendAudit(tx, {
    actor: actor.name,
    action: proposal ? 'payout.pending_approval' : 'payout.accepted',
    subjectType: 'payout',
    subjectId: id,
    after: {
      state: proposal ? 'pending_approval' : 'accepted',
      approvalProposalId: proposal?.id ?? null,
      sourceAccountId: source.id,
      asset: source.asset,
      amountMinor: amountMinor.toString(),
      destination: input.destination,
      journalId,
    },
    requestId: actor.requestId,
  });
  if (!proposal) await enqueueJob(tx, settleTask, {}, { jobKey: settleTask });
  const row = await selectPayout(tx, id);
  assert(row, 'payout vanished after insert');
  return payoutView(row);
}

export async function getPayout(db: Executor, id: string): Promise<PayoutRow> {
  const row = await selectPayout(db, id);
  if (!row) throw new DomainError('payouts/not-found', `no payout ${id}`);
  return row;
}

export type PayoutDetail = PayoutView & {
  history: (Omit<HistoryRow, 'at'> & { at: string })[];
  attempts: {
    id: string;
    hash: string;
    channel: string;
    sequence: string;
    maxTime: string;
    maxLedger: number;
    state: AttemptRow['state'];
    outcome: string | null;
    ledger: number | null;
    submissions: number;
  }[];
};

export async function getPayoutDetail(db: Executor, id: string): Promise<PayoutDetail> {
  const row = await getPayout(db, id);
  const [history, attempts] = await Promise.all([selectHistory(db, id), selectPayoutAttempts(db, id)]);
  return {
    ...payoutView(row),
    history: history.map((entry) => ({ ...entry, at: entry.at.toISOString() })),
    attempts: attempts.map((attempt) => ({
      id: attempt.id,
      hash: attempt.hash,
      channel: attempt.channelAccountId,
      sequence: attempt.sourceSequence.toString(),
      maxTime: new Date(Number(attempt.maxTime) * 1_000).toISOString(),
      maxLedger: attempt.maxLedger,
      state: attempt.state,
      outcome: attempt.outcomeReason,
      ledger: attempt.ledger,
      submissions: attempt.submissions,
    })),
  };
}

/**
 * Settles payouts that left on chain: clearing → settlement, one journal per attempt and asset.
 * In the global lock order (lockAccounts): the payouts move first, then every account of every
 * asset is locked at once, then the postings and the events are written.
 */
export async function settlePayouts(
  tx: Tx,
  payouts: readonly PayoutRow[],
  transition: Extract<Transition, 'attempt_succeeded' | 'confirmed_sent'>,
  detail: { actor: string; attemptId?: string; reference: string; reason?: string },
): Promise<string[]> {
  const groups: {
    journalId: string;
    ids: string[];
    totalMinor: bigint;
    clearing: string;
    settlement: string;
  }[] = [];
  for (const asset of new Set(payouts.map((payout) => payout.asset))) {
    const group = payouts.filter((payout) => payout.asset === asset);
    const journalId = randomUUID();
    const ids = await transitionPayouts(
      tx,
      group.map((payout) => payout.id),
      transition,
      { ...detail, finalJournalId: journalId },
    );
    const totalMinor = group
      .filter((payout) => ids.includes(payout.id))
      .reduce((sum, payout) => sum + payout.amountMinor, 0n);
    if (totalMinor === 0n) continue;
    const [clearing, settlement] = await Promise.all([
      clearingAccount(tx, asset),
      selectSystemAccount(tx, 'settlement', asset),
    ]);
    assert(settlement, `no settlement account for ${asset}`);
    groups.push({ journalId, ids, totalMinor, clearing, settlement: settlement.id });
  }
  if (groups.length > 0) {
    await lockAccounts(
      tx,
      groups.flatMap((group) => [group.clearing, group.settlement]),
    );
  }
  for (const group of groups) {
    await postJournal(tx, {
      journalId: group.journalId,
      kind: 'payout_settle',
      entries: [
        { accountId: group.clearing, amountMinor: -group.totalMinor },
        { accountId: group.settlement, amountMinor: group.totalMinor },
      ],
      reference: detail.reference,
    });
  }
  const moved = groups.flatMap((group) => group.ids);
  const settled = payouts.filter((payout) => moved.includes(payout.id));
  await emitEvents(
    tx,
    settled.map((payout) => payoutFinishedEvent('payout.settled', payout, transition, detail.reason)),
  );
  return moved;
}

/**
 * Refunds payouts that were not sent: clearing → each one's source, one journal per payout, in
 * the caller's transaction; each payout's history and event carry its own reason. In the global
 * lock order (lockAccounts): the payouts move first, then every source and clearing account of the
 * batch is locked at once, then the postings and the events are written. Returns the ids that
 * moved (a payout another transaction moved meanwhile is skipped).
 */
export async function refundPayouts(
  tx: Tx,
  refunds: readonly { payout: PayoutRow; reason: string | undefined }[],
  transition: RefundTransition,
  detail: { actor: string; attemptId?: string },
): Promise<string[]> {
  const moved: { payout: PayoutRow; reason: string | undefined; journalId: string }[] = [];
  for (const { payout, reason } of refunds) {
    const journalId = randomUUID();
    const [id] = await transitionPayouts(tx, [payout.id], transition, {
      ...detail,
      reason,
      finalJournalId: journalId,
    });
    if (id !== undefined) moved.push({ payout, reason, journalId });
  }
  if (moved.length === 0) return [];
  const clearings = new Map<string, string>();
  for (const asset of new Set(moved.map(({ payout }) => payout.asset))) {
    clearings.set(asset, await clearingAccount(tx, asset));
  }
  await lockAccounts(tx, [...clearings.values(), ...moved.map(({ payout }) => payout.sourceAccountId)]);
  for (const { payout, journalId } of moved) {
    const clearing = clearings.get(payout.asset);
    assert(clearing !== undefined, `the clearing account of ${payout.asset} was looked up above`);
    await postJournal(tx, {
      journalId,
      kind: 'payout_refund',
      entries: [
        { accountId: clearing, amountMinor: -payout.amountMinor },
        { accountId: payout.sourceAccountId, amountMinor: payout.amountMinor },
      ],
      reference: payout.id,
    });
  }
  await emitEvents(
    tx,
    moved.map(({ payout, reason }) =>
      payoutFinishedEvent(refundEvent(transition), payout, transition, reason),
    ),
  );
  return moved.map(({ payout }) => payout.id);
}

type RefundTransition = Extract<
  Transition,
  'operation_failed' | 'refunded_failed' | 'approval_refused' | 'cancelled'
>;

function refundEvent(transition: RefundTransition): 'payout.failed' | 'payout.cancelled' {
  return transition === 'operation_failed' || transition === 'refunded_failed'
    ? 'payout.failed'
    : 'payout.cancelled';
}

/** Refunds one payout that was not sent (see refundPayouts); false if it had moved meanwhile. */
export async function refundPayout(
  tx: Tx,
  payout: PayoutRow,
  transition: RefundTransition,
  detail: { actor: string; attemptId?: string; reason?: string },
): Promise<boolean> {
  const refunds = [{ payout, reason: detail.reason }];
  const moved = await refundPayouts(tx, refunds, transition, {
    actor: detail.actor,
    attemptId: detail.attemptId,
  });
  return moved.length === 1;
}

export type ResolveDecision = 'confirm_sent' | 'refund_failed';
export type ResolvePayload = { payoutId: string; decision: ResolveDecision };

function validateResolve(payload: unknown): ResolvePayload {
  const candidate = payload as Partial<ResolvePayload> | null;
  if (
    typeof candidate?.payoutId !== 'string' ||
    !isUuid(candidate.payoutId) ||
    (candidate.decision !== 'confirm_sent' && candidate.decision !== 'refund_failed')
  ) {
    throw new DomainError(
      'request/validation',
      'resolve needs a payoutId and a decision (confirm_sent or refund_failed)',
    );
  }
  return { payoutId: candidate.payoutId, decision: candidate.decision };
}

/** Resolving a payout in manual review moves money, so it is a proposal a second admin must approve. */
export async function proposeResolve(
  tx: Tx,
  approvals: Approvals,
  input: ResolvePayload & { reason: string; proposer: string; requestId: string | undefined },
): Promise<ProposalView> {
  const payout = await getPayout(tx, input.payoutId);
  if (payout.state !== 'manual_review') {
    throw new DomainError('payouts/not-in-manual-review', `payout ${payout.id} is ${payout.state}`);
  }
  return approvals.propose(tx, {
    action: resolveAction,
    payload: { payoutId: input.payoutId, decision: input.decision },
    proposer: input.proposer,
    reason: input.reason,
    requestId: input.requestId,
  });
}

/** The `payouts.approve_large` action: approval queues the payout, rejection or expiry refunds it. */
export function approveLargePayoutAction(): ProposalAction {
  return approveLargeProposalAction(settleTask, getPayout, (tx, payout, actor, reason) =>
    refundPayout(tx, payout, 'approval_refused', { actor, reason }),
  );
}

export function resolveProposalAction(): ProposalAction {
  return {
    name: resolveAction,
    approvalsRequired: 1,
    validate: (payload) => validateResolve(payload) as unknown as Payload,
    execute: async (tx, payload, context) => {
      const { payoutId, decision } = validateResolve(payload);
      const payout = await getPayout(tx, payoutId);
      if (payout.state !== 'manual_review') {
        throw new DomainError('payouts/not-in-manual-review', `payout ${payout.id} is ${payout.state}`);
      }
      const actor = context.approvers.join(',');
      const reason = `proposal ${context.proposalId}`;
      const moved =
        decision === 'confirm_sent'
          ? (await settlePayouts(tx, [payout], 'confirmed_sent', { actor, reference: payout.id, reason }))
              .length === 1
          : await refundPayout(tx, payout, 'refunded_failed', { actor, reason });
      if (!moved)
        throw new DomainError('payouts/not-in-manual-review', `payout ${payout.id} moved meanwhile`);
      await appendAudit(tx, {
        actor,
        action: `payout.${decision}`,
        subjectType: 'payout',
        subjectId: payout.id,
        before: { state: 'manual_review' },
        after: { decision, proposalId: context.proposalId, proposer: context.proposer },
        requestId: context.requestId,
      });
      manualReviewTransitions.inc({ action: decision });
      return { payoutId: payout.id, decision };
    },
  };
}

/**
 * Cancels a payout no transaction was ever built for, refunding it in one journal transaction
 * with its audit row and `payout.cancelled` event. The payout's row lock is taken first: the
 * engine claims with `skip locked`, so either the engine built it (and cancelling is refused) or
 * the cancel commits first and the engine never sees it in `accepted` again.
 */
export async function cancelPayout(
  tx: Tx,
  input: { payoutId: string; reason: string; actor: Actor; ownerOnly: string | undefined },
): Promise<PayoutView> {
  const payout = await selectPayoutForUpdate(tx, input.payoutId);
  if (!payout || (input.ownerOnly !== undefined && payout.createdBy !== input.ownerOnly)) {
    throw new DomainError('payouts/not-found', `no payout ${input.payoutId}`);
  }
  if (payout.state === 'cancelled') {
    throw new DomainError('payouts/already-cancelled', `payout ${payout.id} is already cancelled`);
  }
  const cancellable = payout.state === 'accepted' || payout.state === 'pending_approval';
  if (!cancellable || (await payoutWasAttempted(tx, payout.id))) {
    throw new DomainError(
      'payouts/already-submitted',
      `payout ${payout.id} is ${payout.state}: a transaction paying it was built, so it can no longer be cancelled`,
    );
  }
  const moved = await refundPayout(tx, payout, 'cancelled', {
    actor: input.actor.name,
    reason: input.reason,
  });
  // Its audit row (`payout.cancelled`, actor and reason) is written by the transition itself.
  assert(moved, 'a locked cancellable payout did not move to cancelled');
  const row = await selectPayout(tx, payout.id);
  assert(row, 'payout vanished after cancel');
  return payoutView(row);
}
