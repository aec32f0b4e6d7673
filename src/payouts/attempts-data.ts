import type { Executor } from '../platform/db/types.ts';

export const attemptStates = ['built', 'submitted', 'succeeded', 'failed', 'expired', 'abandoned'] as const;
export type AttemptState = (typeof attemptStates)[number];

export type AttemptRow = {
  id: string;
  channelAccountId: string;
  sourceSequence: bigint;
  hash: string;
  envelopeXdr: string;
  feeStroops: bigint;
  maxTime: bigint;
  maxLedger: number;
  state: AttemptState;
  outcomeReason: string | null;
  resultCodes: unknown;
  ledger: number | null;
  submissions: number;
  feeBumpEnvelopeXdr: string | null;
  feeBumpStroops: bigint | null;
  createdAt: Date;
  submittedAt: Date | null;
  lastSubmittedAt: Date | null;
  checkedAt: Date | null;
  resolvedAt: Date | null;
};

export type NewAttempt = Pick<
  AttemptRow,
  | 'id'
  | 'channelAccountId'
  | 'sourceSequence'
  | 'hash'
  | 'envelopeXdr'
  | 'feeStroops'
  | 'maxTime'
  | 'maxLedger'
>;

export type AttemptPayout = { payoutId: string; operationIndex: number; live: boolean };

const attemptColumns = (db: Executor) => db`
  a.id, a.channel_account_id as "channelAccountId", a.source_sequence as "sourceSequence", a.hash,
  a.envelope_xdr as "envelopeXdr", a.fee_stroops as "feeStroops", a.max_time as "maxTime",
  a.max_ledger as "maxLedger", a.state, a.outcome_reason as "outcomeReason", a.result_codes as "resultCodes",
  a.ledger, a.submissions, a.fee_bump_envelope_xdr as "feeBumpEnvelopeXdr", a.fee_bump_stroops as "feeBumpStroops", a.created_at as "createdAt", a.submitted_at as "submittedAt", a.last_submitted_at as "lastSubmittedAt",
  a.checked_at as "checkedAt", a.resolved_at as "resolvedAt"`;

/** Stores the signed envelope and its window before anything is sent, with its payouts marked live. */
export async function insertAttempt(
  db: Executor,
  attempt: NewAttempt,
  payoutIds: readonly string[],
): Promise<void> {
  await db`
    with attempt as (
      insert into settlement_attempts (id, channel_account_id, source_sequence, hash, envelope_xdr, fee_stroops,
                                       max_time, max_ledger)
      values (${attempt.id}::uuid, ${attempt.channelAccountId}::text, ${attempt.sourceSequence}::int8,
              ${attempt.hash}::text, ${attempt.envelopeXdr}::text, ${attempt.feeStroops}::int8,
              ${attempt.maxTime}::int8, ${attempt.maxLedger}::int)
      returning id
    )
    insert into settlement_attempt_payouts (attempt_id, payout_id, operation_index)
    select attempt.id, payout.id, payout.index - 1
    from attempt, unnest(${payoutIds as string[]}::uuid[]) with ordinality as payout (id, index)`;
}

export async function selectAttempt(db: Executor, id: string): Promise<AttemptRow | undefined> {
  const [row] = await db<
    AttemptRow[]
  >`select ${attemptColumns(db)} from settlement_attempts a where a.id = ${id}::uuid`;
  return row;
}

/** Live attempts, least recently checked first. */
export async function selectLiveAttempts(db: Executor, limit: number): Promise<AttemptRow[]> {
  return db<AttemptRow[]>`
    select ${attemptColumns(db)} from settlement_attempts a
    where a.state in ('built', 'submitted')
    order by a.checked_at nulls first, a.created_at
    limit ${limit}::int`;
}

export async function countLiveAttempts(db: Executor): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from settlement_attempts where state in ('built', 'submitted')`;
  return row?.count ?? 0;
}

export async function selectAttemptPayouts(db: Executor, attemptId: string): Promise<AttemptPayout[]> {
  return db<AttemptPayout[]>`
    select payout_id as "payoutId", operation_index as "operationIndex", live
    from settlement_attempt_payouts where attempt_id = ${attemptId}::uuid order by operation_index`;
}

export async function selectPayoutAttempts(db: Executor, payoutId: string): Promise<AttemptRow[]> {
  return db<AttemptRow[]>`
    select ${attemptColumns(db)} from settlement_attempts a
    join settlement_attempt_payouts ap on ap.attempt_id = a.id
    where ap.payout_id = ${payoutId}::uuid order by a.created_at`;
}

export async function markAttemptSubmitted(db: Executor, id: string): Promise<void> {
  await db`
    update settlement_attempts
    set state = 'submitted', submissions = submissions + 1, submitted_at = coalesce(submitted_at, now()),
        last_submitted_at = now(), checked_at = now()
    where id = ${id}::uuid and state in ('built', 'submitted')`;
}

/** Stores a fee bump before it is sent; a live attempt only, and only a higher one. */
export async function storeFeeBump(
  db: Executor,
  id: string,
  envelopeXdr: string,
  feeStroops: bigint,
): Promise<boolean> {
  const rows = await db`
    update settlement_attempts set fee_bump_envelope_xdr = ${envelopeXdr}::text, fee_bump_stroops = ${feeStroops}::int8
    where id = ${id}::uuid and state in ('built', 'submitted')
      and (fee_bump_stroops is null or fee_bump_stroops < ${feeStroops}::int8)
    returning id`;
  return rows.length === 1;
}

export async function markAttemptRefused(db: Executor, id: string, reason: string): Promise<void> {
  await db`
    update settlement_attempts set outcome_reason = ${reason}::text
    where id = ${id}::uuid and state in ('built', 'submitted')`;
}

export async function markAttemptChecked(db: Executor, id: string): Promise<void> {
  await db`update settlement_attempts set checked_at = now() where id = ${id}::uuid`;
}

/**
 * Ends a live attempt. Guarded: only one resolver wins; the loser gets false and must do nothing.
 * The attempt's payouts stop being live in the same statement.
 */
export async function resolveAttempt(
  db: Executor,
  id: string,
  outcome: {
    state: Exclude<AttemptState, 'built' | 'submitted'>;
    reason: string;
    resultCodes?: unknown;
    ledger?: number;
  },
): Promise<boolean> {
  const rows = await db`
    with resolved as (
      update settlement_attempts
      set state = ${outcome.state}::text, outcome_reason = ${outcome.reason}::text,
          result_codes = ${outcome.resultCodes === undefined ? null : db.json(outcome.resultCodes as Parameters<typeof db.json>[0])}::jsonb,
          ledger = ${outcome.ledger ?? null}::int, resolved_at = now(), checked_at = now()
      where id = ${id}::uuid and state in ('built', 'submitted')
      returning id
    ), released as (
      update settlement_attempt_payouts set live = false where attempt_id in (select id from resolved)
    )
    select id from resolved`;
  return rows.length === 1;
}

export type ChannelRow = { accountId: string; nextSequence: bigint | null; liveAttemptId: string | null };

export async function upsertChannels(db: Executor, accountIds: readonly string[]): Promise<void> {
  await db`
    insert into payout_channels (account_id)
    select unnest(${accountIds as string[]}::text[])
    on conflict do nothing`;
}

export async function selectChannels(db: Executor): Promise<ChannelRow[]> {
  return db<ChannelRow[]>`
    select account_id as "accountId", next_sequence as "nextSequence", live_attempt_id as "liveAttemptId"
    from payout_channels order by account_id`;
}

/** A channel with no live attempt, locked for this builder; the others skip it. */
export async function claimChannel(
  db: Executor,
  accountIds: readonly string[],
): Promise<ChannelRow | undefined> {
  const [row] = await db<ChannelRow[]>`
    select account_id as "accountId", next_sequence as "nextSequence", live_attempt_id as "liveAttemptId"
    from payout_channels
    where live_attempt_id is null and account_id = any(${accountIds as string[]}::text[])
    order by updated_at
    limit 1
    for update skip locked`;
  return row;
}

export async function occupyChannel(db: Executor, accountId: string, attemptId: string): Promise<void> {
  await db`
    update payout_channels set live_attempt_id = ${attemptId}::uuid, updated_at = now()
    where account_id = ${accountId}::text and live_attempt_id is null`;
}

/** Frees the channel of an ended attempt; `nextSequence` null means "ask the network next time". */
export async function releaseChannel(
  db: Executor,
  accountId: string,
  attemptId: string,
  nextSequence: bigint | null,
): Promise<void> {
  await db`
    update payout_channels set live_attempt_id = null, next_sequence = ${nextSequence}::int8, updated_at = now()
    where account_id = ${accountId}::text and live_attempt_id = ${attemptId}::uuid`;
}
