import { randomUUID } from 'node:crypto';
import type { Approvals, Payload, ProposalAction, ProposalView } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import { assertMoneyMovementAllowed } from '../controls/service.ts';
import { selectAccountsForUpdate, selectSystemAccount } from '../ledger/data.ts';
import { postJournal } from '../ledger/service.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import { formatAmount } from '../money/money.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import { enqueueJob } from '../platform/jobs.ts';
import { emitEvent, emitEvents, payoutFinishedEvent } from '../webhooks/events.ts';
import { type AttemptRow, selectPayoutAttempts } from './attempts-data.ts';
import {
  type HistoryRow,
  insertPayout,
  type PayoutRow,
  selectHistory,
  selectPayout,
  transitionPayouts,
} from './data.ts';
import { checkDestination, checkMemo, type MemoType } from './memo.ts';
import { manualReviewTransitions } from './metrics.ts';
import type { Transition } from './states.ts';

export const settleTask = 'payouts_settle';
export const resolveAction = 'payouts.resolve';
export const resolveReasonLengthMax = 1_000;
/** Stellar amounts are int64 stroops: seven decimals. */
const stellarDecimals = 7;

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
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

async function clearingAccount(db: Executor, asset: string): Promise<string> {
  const account = await selectSystemAccount(db, 'payout_clearing', asset);
  if (!account) throw new Error(`no payout_clearing account for ${asset}: system accounts missing`);
  return account.id;
}

/**
 * Accepts a payout: the amount leaves the source for `payout_clearing` and settlement is enqueued,
 * all in the caller's transaction. A freeze does not refuse it (the engine holds it); read_only does.
 */
export async function acceptPayout(tx: Tx, input: PayoutInput, actor: Actor): Promise<PayoutView> {
  checkDestination(input.destination);
  const memo = checkMemo(input.memo);
  if (input.destination.startsWith('M') && memo.type !== 'none') {
    throw new DomainError(
      'payouts/invalid-memo',
      'a muxed (M…) destination carries its own id: leave the memo out',
    );
  }
  await assertMoneyMovementAllowed(tx);
  const [source] = await selectAccountsForUpdate(tx, [input.sourceAccountId]);
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
  const clearing = await clearingAccount(tx, source.asset);
  const id = randomUUID();
  const { journalId } = await postJournal(tx, {
    kind: 'payout_accept',
    entries: [
      { accountId: source.id, amountMinor: -amountMinor },
      { accountId: clearing, amountMinor },
    ],
    reference: id,
    requestId: actor.requestId,
  });
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
  });
  await enqueueJob(tx, settleTask, {}, { jobKey: settleTask });
  const row = await selectPayout(tx, id);
  if (!row) throw new Error('payout vanished after insert');
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

/** Settles payouts that left on chain: clearing → settlement, one journal per attempt and asset. */
export async function settlePayouts(
  tx: Tx,
  payouts: readonly PayoutRow[],
  transition: Extract<Transition, 'attempt_succeeded' | 'confirmed_sent'>,
  detail: { actor: string; attemptId?: string; reference: string; reason?: string },
): Promise<string[]> {
  const moved: string[] = [];
  for (const asset of new Set(payouts.map((payout) => payout.asset))) {
    const group = payouts.filter((payout) => payout.asset === asset);
    const journalId = randomUUID();
    const ids = await transitionPayouts(
      tx,
      group.map((payout) => payout.id),
      transition,
      { ...detail, finalJournalId: journalId },
    );
    const total = group
      .filter((payout) => ids.includes(payout.id))
      .reduce((sum, payout) => sum + payout.amountMinor, 0n);
    if (total === 0n) continue;
    const [clearing, settlement] = await Promise.all([
      clearingAccount(tx, asset),
      selectSystemAccount(tx, 'settlement', asset),
    ]);
    if (!settlement) throw new Error(`no settlement account for ${asset}`);
    await postJournal(tx, {
      journalId,
      kind: 'payout_settle',
      entries: [
        { accountId: clearing, amountMinor: -total },
        { accountId: settlement.id, amountMinor: total },
      ],
      reference: detail.reference,
    });
    moved.push(...ids);
  }
  const settled = payouts.filter((payout) => moved.includes(payout.id));
  await emitEvents(
    tx,
    settled.map((payout) => payoutFinishedEvent('payout.settled', payout, transition, detail.reason)),
  );
  return moved;
}

/** Refunds one payout that was not sent: clearing → its source, in the same transaction as the move. */
export async function refundPayout(
  tx: Tx,
  payout: PayoutRow,
  transition: Extract<Transition, 'operation_failed' | 'refunded_failed'>,
  detail: { actor: string; attemptId?: string; reason?: string },
): Promise<boolean> {
  const journalId = randomUUID();
  const [moved] = await transitionPayouts(tx, [payout.id], transition, {
    ...detail,
    finalJournalId: journalId,
  });
  if (moved === undefined) return false;
  await postJournal(tx, {
    journalId,
    kind: 'payout_refund',
    entries: [
      { accountId: await clearingAccount(tx, payout.asset), amountMinor: -payout.amountMinor },
      { accountId: payout.sourceAccountId, amountMinor: payout.amountMinor },
    ],
    reference: payout.id,
  });
  await emitEvent(tx, payoutFinishedEvent('payout.failed', payout, transition, detail.reason));
  return true;
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
