import type { Executor } from '../platform/db/types.ts';
import type { MemoType } from './memo.ts';
import { type PayoutState, type Transition, transitions } from './states.ts';

export type PayoutRow = {
  id: string;
  sourceAccountId: string;
  asset: string;
  precision: number;
  amountMinor: bigint;
  destination: string;
  memoType: MemoType;
  memoValue: string | null;
  state: PayoutState;
  stateReason: string;
  createdBy: string;
  finalJournalId: string | null;
  approvalProposalId: string | null;
  createdAt: Date;
  updatedAt: Date;
};

const payoutColumns = (db: Executor) => db`
  p.id, p.source_account_id as "sourceAccountId", p.asset, s.precision, p.amount_minor as "amountMinor",
  p.destination, p.memo_type as "memoType", p.memo_value as "memoValue", p.state, p.state_reason as "stateReason",
  p.created_by as "createdBy", p.final_journal_id as "finalJournalId",
  p.approval_proposal_id as "approvalProposalId", p.created_at as "createdAt",
  p.updated_at as "updatedAt"`;

export async function insertPayout(
  db: Executor,
  payout: {
    id: string;
    sourceAccountId: string;
    asset: string;
    amountMinor: bigint;
    destination: string;
    memoType: MemoType;
    memoValue: string | null;
    createdBy: string;
    requestId: string | null;
    acceptJournalId: string;
    /** `pending_approval` (with its proposal) over an approval threshold, `accepted` otherwise. */
    state: Extract<PayoutState, 'accepted' | 'pending_approval'>;
    stateReason: string;
    approvalProposalId: string | null;
  },
): Promise<void> {
  await db`
    with inserted as (
      insert into payouts (id, source_account_id, asset, amount_minor, destination, memo_type, memo_value,
                           state, state_reason, created_by, request_id, accept_journal_id, approval_proposal_id)
      values (${payout.id}::uuid, ${payout.sourceAccountId}::uuid, ${payout.asset}::text, ${payout.amountMinor}::int8,
              ${payout.destination}::text, ${payout.memoType}::text, ${payout.memoValue}::text, ${payout.state}::text,
              ${payout.stateReason}::text, ${payout.createdBy}::text, ${payout.requestId}::text,
              ${payout.acceptJournalId}::uuid, ${payout.approvalProposalId}::uuid)
      returning id, state, state_reason
    )
    insert into payout_state_history (payout_id, from_state, to_state, reason, actor)
    select id, null, state, state_reason, ${payout.createdBy}::text from inserted`;
}

/**
 * What one source paid out since `since`, cancelled payouts excepted (their money came back);
 * the rolling daily total of the approval threshold. Reads the payouts_by_source index range.
 */
export async function sumPayoutsSince(db: Executor, sourceAccountId: string, since: Date): Promise<bigint> {
  const [row] = await db<{ total: bigint }[]>`
    select coalesce(sum(amount_minor), 0)::int8 as total from payouts
    where source_account_id = ${sourceAccountId}::uuid and created_at >= ${since}::timestamptz
      and state <> 'cancelled'`;
  return row?.total ?? 0n;
}

/** Takes the payout's row lock: a cancel and the engine's claim (skip locked) exclude each other. */
export async function selectPayoutForUpdate(db: Executor, id: string): Promise<PayoutRow | undefined> {
  const [row] = await db<PayoutRow[]>`
    select ${payoutColumns(db)} from payouts p join assets s on s.code = p.asset
    where p.id = ${id}::uuid for update of p`;
  return row;
}

/** Whether a transaction paying it was ever built (an attempt exists, live or not). */
export async function payoutWasAttempted(db: Executor, payoutId: string): Promise<boolean> {
  const [row] = await db<{ attempted: boolean }[]>`
    select exists (select 1 from settlement_attempt_payouts where payout_id = ${payoutId}::uuid) as attempted`;
  return row?.attempted ?? false;
}

export async function selectPayout(db: Executor, id: string): Promise<PayoutRow | undefined> {
  const [row] = await db<PayoutRow[]>`
    select ${payoutColumns(db)} from payouts p join assets s on s.code = p.asset where p.id = ${id}::uuid`;
  return row;
}

export async function selectPayoutsByIds(db: Executor, ids: readonly string[]): Promise<PayoutRow[]> {
  return db<PayoutRow[]>`
    select ${payoutColumns(db)} from payouts p join assets s on s.code = p.asset
    where p.id = any(${ids as string[]}::uuid[]) order by p.created_at, p.id`;
}

export type PayoutFilter = {
  state: PayoutState | undefined;
  sourceAccountId: string | undefined;
  after: { createdAt: Date; id: string } | undefined;
  limit: number;
};

/** Newest first, keyset-paged on (created_at, id). */
export async function selectPayoutsPage(db: Executor, filter: PayoutFilter): Promise<PayoutRow[]> {
  return db<PayoutRow[]>`
    select ${payoutColumns(db)} from payouts p join assets s on s.code = p.asset
    where (${filter.state ?? null}::text is null or p.state = ${filter.state ?? null}::text)
      and (${filter.sourceAccountId ?? null}::uuid is null or p.source_account_id = ${filter.sourceAccountId ?? null}::uuid)
      and (${filter.after?.createdAt ?? null}::timestamptz is null
           or (p.created_at, p.id) < (${filter.after?.createdAt ?? null}::timestamptz, ${filter.after?.id ?? null}::uuid))
    order by p.created_at desc, p.id desc
    limit ${filter.limit}::int`;
}

export async function selectManualReview(db: Executor, limit: number, offset: number): Promise<PayoutRow[]> {
  return db<PayoutRow[]>`
    select ${payoutColumns(db)} from payouts p join assets s on s.code = p.asset
    where p.state = 'manual_review' order by p.updated_at, p.id limit ${limit}::int offset ${offset}::int`;
}

export async function countPayoutsInState(db: Executor, state: PayoutState): Promise<number> {
  const [row] = await db<
    { count: number }[]
  >`select count(*)::int as count from payouts where state = ${state}::text`;
  return row?.count ?? 0;
}

/**
 * Moves payouts along one transition of the state machine. The update is guarded by the
 * transition's allowed source states and appends the history in the same statement; it returns
 * the ids that actually moved, so a caller that lost a race moves nothing.
 */
/**
 * Moves payouts through one transition. The same statement writes each one's history row and its
 * audit row (action `payout.<new state>`), so no payout changes state without an audit row.
 */
export async function transitionPayouts(
  db: Executor,
  ids: readonly string[],
  transition: Transition,
  detail: { actor: string; attemptId?: string; finalJournalId?: string; reason?: string },
): Promise<string[]> {
  const { from, to, reason } = transitions[transition];
  const text = detail.reason ? `${reason}: ${detail.reason}` : reason;
  const rows = await db<{ id: string }[]>`
    with old as (
      select id, state from payouts
      where id = any(${ids as string[]}::uuid[]) and state = any(${from as unknown as string[]}::text[])
      for update
    ), moved as (
      update payouts p set state = ${to}::text, state_reason = ${text}::text, updated_at = now(),
        final_journal_id = coalesce(${detail.finalJournalId ?? null}::uuid, p.final_journal_id)
      from old where p.id = old.id
      returning p.id, old.state as from_state
    ), history as (
      insert into payout_state_history (payout_id, from_state, to_state, reason, actor, attempt_id)
      select id, from_state, ${to}::text, ${text}::text, ${detail.actor}::text, ${detail.attemptId ?? null}::uuid
      from moved
    ), audit as (
      insert into audit_log (actor, action, subject_type, subject_id, before, after)
      select ${detail.actor}::text, ${`payout.${to}`}::text, 'payout', id::text,
        jsonb_build_object('state', from_state),
        jsonb_build_object('state', ${to}::text, 'transition', ${transition}::text, 'reason', ${text}::text,
          'attemptId', ${detail.attemptId ?? null}::uuid, 'finalJournalId', ${detail.finalJournalId ?? null}::uuid)
      from moved
    )
    select id from moved`;
  return rows.map((row) => row.id);
}

export type HistoryRow = {
  fromState: PayoutState | null;
  toState: PayoutState;
  reason: string;
  actor: string;
  attemptId: string | null;
  at: Date;
};

export async function selectHistory(db: Executor, payoutId: string): Promise<HistoryRow[]> {
  return db<HistoryRow[]>`
    select from_state as "fromState", to_state as "toState", reason, actor, attempt_id as "attemptId", at
    from payout_state_history where payout_id = ${payoutId}::uuid order by id`;
}

/** Oldest accepted payouts not locked by another builder; the limit is in the SQL. */
export async function claimReadyPayouts(db: Executor, limit: number): Promise<PayoutRow[]> {
  return db<PayoutRow[]>`
    select ${payoutColumns(db)} from payouts p join assets s on s.code = p.asset
    where p.state = 'accepted'
    order by p.created_at, p.id
    limit ${limit}::int
    for update of p skip locked`;
}

export async function countReadyPayouts(db: Executor): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from payouts where state = 'accepted'`;
  return row?.count ?? 0;
}
