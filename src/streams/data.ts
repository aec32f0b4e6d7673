import { openStates as openPayoutStates } from '../payouts/states.ts';
import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';
import {
  type RunFinish,
  runOutcomes,
  type StreamState,
  type StreamStatus,
  type Transition,
  transitions,
} from './states.ts';

export type StreamRow = {
  id: string;
  holdId: string;
  payerAccountId: string;
  recipientAccountId: string | null;
  recipientAddress: string | null;
  asset: string;
  precision: number;
  totalMinor: bigint;
  settledMinor: bigint;
  refundedMinor: bigint;
  startAt: Date;
  cliffAt: Date | null;
  endAt: Date;
  intervalSeconds: number;
  minimumMinor: bigint;
  nextSettlementAt: Date | null;
  cancelledAt: Date | null;
  reference: string | null;
  metadata: Record<string, string>;
  state: StreamState;
  stateReason: string;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
};

const streamColumns = (db: Executor) => db`
  s.id, s.hold_id as "holdId", s.payer_account_id as "payerAccountId",
  s.recipient_account_id as "recipientAccountId", s.recipient_address as "recipientAddress", s.asset, a.precision,
  s.total_minor as "totalMinor", s.settled_minor as "settledMinor", s.refunded_minor as "refundedMinor",
  s.start_at as "startAt", s.cliff_at as "cliffAt", s.end_at as "endAt", s.interval_seconds as "intervalSeconds",
  s.minimum_minor as "minimumMinor", s.next_settlement_at as "nextSettlementAt", s.cancelled_at as "cancelledAt",
  s.reference, s.metadata, s.state, s.state_reason as "stateReason", s.created_by as "createdBy",
  s.created_at as "createdAt", s.updated_at as "updatedAt"`;

export async function insertStream(
  db: Executor,
  stream: {
    id: string;
    holdId: string;
    payerAccountId: string;
    recipientAccountId: string | null;
    recipientAddress: string | null;
    asset: string;
    totalMinor: bigint;
    startAt: Date;
    cliffAt: Date | null;
    endAt: Date;
    intervalSeconds: number;
    minimumMinor: bigint;
    nextSettlementAt: Date;
    reference: string | null;
    metadata: Record<string, string>;
    createdBy: string;
    requestId: string | null;
  },
): Promise<void> {
  await db`
    insert into streams (id, hold_id, payer_account_id, recipient_account_id, recipient_address, asset, total_minor,
                         start_at, cliff_at, end_at, interval_seconds, minimum_minor, next_settlement_at, reference,
                         metadata, state, state_reason, created_by, request_id)
    values (${stream.id}::uuid, ${stream.holdId}::uuid, ${stream.payerAccountId}::uuid,
            ${stream.recipientAccountId}::uuid, ${stream.recipientAddress}::text, ${stream.asset}::text,
            ${stream.totalMinor}::int8, ${stream.startAt}::timestamptz, ${stream.cliffAt}::timestamptz,
            ${stream.endAt}::timestamptz, ${stream.intervalSeconds}::int, ${stream.minimumMinor}::int8,
            ${stream.nextSettlementAt}::timestamptz, ${stream.reference}::text, ${db.json(stream.metadata)}::jsonb,
            'active', 'funded: the total moved into escrow', ${stream.createdBy}::text, ${stream.requestId}::text)`;
}

export async function selectStream(db: Executor, id: string): Promise<StreamRow | undefined> {
  const [row] = await db<StreamRow[]>`
    select ${streamColumns(db)} from streams s join assets a on a.code = s.asset where s.id = ${id}::uuid`;
  return row;
}

/** The stream's row lock: a settlement and a cancellation read `settled` under it. */
export async function selectStreamForUpdate(db: Executor, id: string): Promise<StreamRow | undefined> {
  const [row] = await db<StreamRow[]>`
    select ${streamColumns(db)} from streams s join assets a on a.code = s.asset
    where s.id = ${id}::uuid for update of s`;
  return row;
}

export type StreamFilter = {
  payerAccountId: string | undefined;
  recipientAccountId: string | undefined;
  asset: string | undefined;
  /** What a reader sees at `at`: `active` refined by the clock (states.ts). */
  status: StreamStatus | undefined;
  at: Date;
  after: { createdAt: Date; id: string } | undefined;
  limit: number;
};

/** Newest first, keyset-paged on (created_at, id). */
export async function selectStreamsPage(db: Executor, filter: StreamFilter): Promise<StreamRow[]> {
  const status = filter.status ?? null;
  return db<StreamRow[]>`
    select ${streamColumns(db)} from streams s join assets a on a.code = s.asset
    where (${filter.payerAccountId ?? null}::uuid is null or s.payer_account_id = ${filter.payerAccountId ?? null}::uuid)
      and (${filter.recipientAccountId ?? null}::uuid is null
           or s.recipient_account_id = ${filter.recipientAccountId ?? null}::uuid)
      and (${filter.asset ?? null}::text is null or s.asset = ${filter.asset ?? null}::text)
      and case ${status}::text
            when 'pending' then s.state = 'active' and ${filter.at}::timestamptz < s.start_at
            when 'streaming' then s.state = 'active' and s.start_at <= ${filter.at}::timestamptz
                                  and ${filter.at}::timestamptz < s.end_at
            when 'ended' then s.state = 'active' and s.end_at <= ${filter.at}::timestamptz
            when 'completed' then s.state = 'completed'
            when 'cancelled' then s.state = 'cancelled'
            else true end
      and (${filter.after?.createdAt ?? null}::timestamptz is null
           or (s.created_at, s.id) < (${filter.after?.createdAt ?? null}::timestamptz, ${filter.after?.id ?? null}::uuid))
    order by s.created_at desc, s.id desc
    limit ${filter.limit}::int`;
}

/**
 * Active streams due at `asOf`, oldest due first, locked with their escrow holds (the rows naming
 * the work, before any account in the global lock order) and skipped when another run or a
 * cancellation holds either, and those in `skip` (refused earlier in the run); the limit is in the SQL.
 */
export async function claimDueStreams(
  db: Executor,
  asOf: Date,
  limit: number,
  skip: readonly string[],
): Promise<StreamRow[]> {
  return db<StreamRow[]>`
    select ${streamColumns(db)} from streams s
    join assets a on a.code = s.asset
    join escrow_holds h on h.id = s.hold_id
    where s.state = 'active' and s.next_settlement_at <= ${asOf}::timestamptz
      and s.id <> all(${skip as string[]}::uuid[])
    order by s.next_settlement_at, s.id
    limit ${limit}::int
    for update of s, h skip locked`;
}

/**
 * Moves a stream along one transition: adds what was settled and refunded, sets when a run next
 * looks at it (null once finished) and, for a cancellation, when. Guarded by the transition's
 * source states; false when the guard fails and nothing changed.
 */
export async function moveStream(
  db: Executor,
  input: {
    streamId: string;
    transition: Transition;
    settledMinor: bigint;
    refundedMinor: bigint;
    nextSettlementAt: Date | null;
    cancelledAt: Date | null;
  },
): Promise<boolean> {
  const { from, to, reason } = transitions[input.transition];
  const rows = await db`
    update streams s set
      settled_minor = s.settled_minor + ${input.settledMinor}::int8,
      refunded_minor = s.refunded_minor + ${input.refundedMinor}::int8,
      next_settlement_at = ${input.nextSettlementAt}::timestamptz,
      cancelled_at = ${input.cancelledAt}::timestamptz,
      state = ${to}::text, state_reason = ${reason}::text, updated_at = now()
    where s.id = ${input.streamId}::uuid and s.state = any(${from as unknown as string[]}::text[])
    returning s.id`;
  return rows.length === 1;
}

/** A due stream whose accrual since its last settlement is below its minimum: it waits. */
export async function postponeStream(db: Executor, streamId: string, nextSettlementAt: Date): Promise<void> {
  const rows = await db`
    update streams set next_settlement_at = ${nextSettlementAt}::timestamptz, updated_at = now()
    where id = ${streamId}::uuid and state = 'active'
    returning id`;
  assert(rows.length === 1, `stream ${streamId} changed under its row lock`);
}

export type SettlementRow = {
  cause: 'run' | 'cancel';
  runId: string | null;
  periodIndex: number | null;
  amountMinor: bigint;
  asOf: Date;
  journalId: string;
  payoutId: string | null;
  createdAt: Date;
};

export async function insertSettlement(
  db: Executor,
  settlement: {
    streamId: string;
    cause: SettlementRow['cause'];
    runId: string | null;
    periodIndex: number | null;
    amountMinor: bigint;
    asOf: Date;
    journalId: string;
    payoutId: string | null;
  },
): Promise<void> {
  await db`
    insert into stream_settlements (stream_id, cause, run_id, period_index, amount_minor, as_of, journal_id, payout_id)
    values (${settlement.streamId}::uuid, ${settlement.cause}::text, ${settlement.runId}::uuid,
            ${settlement.periodIndex}::int, ${settlement.amountMinor}::int8, ${settlement.asOf}::timestamptz,
            ${settlement.journalId}::uuid, ${settlement.payoutId}::uuid)`;
}

/** A stream's settlements, oldest first; at most `limit`. */
export async function selectSettlements(
  db: Executor,
  streamId: string,
  limit: number,
): Promise<SettlementRow[]> {
  return db<SettlementRow[]>`
    select cause, run_id as "runId", period_index as "periodIndex", amount_minor as "amountMinor", as_of as "asOf",
           journal_id as "journalId", payout_id as "payoutId", created_at as "createdAt"
    from stream_settlements where stream_id = ${streamId}::uuid order by id limit ${limit}::int`;
}

export type RunOutcome = 'running' | RunFinish;

export type RunRow = {
  id: string;
  asOf: Date;
  startedAt: Date;
  finishedAt: Date | null;
  streamsSettled: number;
  /** Per asset, minor units as decimal strings. */
  amounts: Record<string, string>;
  outcome: RunOutcome;
  error: string | null;
};

const runColumns = (db: Executor) => db`
  id, as_of as "asOf", started_at as "startedAt", finished_at as "finishedAt", streams_settled as "streamsSettled",
  amounts, outcome, error`;

export async function insertRun(db: Executor, run: { id: string; asOf: Date }): Promise<void> {
  await db`insert into stream_settlement_runs (id, as_of) values (${run.id}::uuid, ${run.asOf}::timestamptz)`;
}

/** Adds one batch's settlements to its run, per asset, in the batch's transaction. */
export async function addToRun(
  db: Executor,
  runId: string,
  paid: { assets: readonly string[]; minors: readonly bigint[] },
): Promise<void> {
  const rows = await db`
    update stream_settlement_runs r set
      streams_settled = r.streams_settled + ${paid.assets.length}::int,
      amounts = (
        select coalesce(jsonb_object_agg(total.asset, total.minor::text), '{}'::jsonb)
        from (
          select part.asset, sum(part.minor) as minor from (
            select key as asset, (value #>> '{}')::numeric as minor from jsonb_each(r.amounts)
            union all
            select * from unnest(${paid.assets as string[]}::text[], ${paid.minors.map(String)}::numeric[])
          ) part group by part.asset
        ) total)
    where r.id = ${runId}::uuid and r.outcome = 'running'
    returning r.id`;
  assert(rows.length === 1, `stream settlement run ${runId} is not running`);
}

export async function finishRunRow(
  db: Executor,
  runId: string,
  outcome: Exclude<RunOutcome, 'running' | 'abandoned'>,
  error: string | null,
): Promise<RunRow> {
  const [row] = await db<RunRow[]>`
    update stream_settlement_runs set outcome = ${outcome}::text, error = ${error}::text, finished_at = now()
    where id = ${runId}::uuid and outcome = 'running'
    returning ${runColumns(db)}`;
  assert(row, `stream settlement run ${runId} is not running`);
  return row;
}

export async function selectRun(db: Executor, runId: string): Promise<RunRow | undefined> {
  const [row] = await db<
    RunRow[]
  >`select ${runColumns(db)} from stream_settlement_runs where id = ${runId}::uuid`;
  return row;
}

/**
 * How long the oldest active stream has been due and not settled, in seconds (0 when none is):
 * one row from the `streams_due` index, whatever the number of streams.
 */
export async function selectSettlementLag(db: Executor): Promise<number> {
  const [row] = await db<{ lagSeconds: number }[]>`
    select coalesce(extract(epoch from now() - min(next_settlement_at)), 0)::float8 as "lagSeconds"
    from streams where state = 'active' and next_settlement_at <= now()`;
  return row?.lagSeconds ?? 0;
}

/** Runs, newest first, keyset-paged on (started_at, id); `outcome` filters. */
export async function selectRunsPage(
  db: Executor,
  filter: {
    outcome: RunOutcome | undefined;
    after: { startedAt: Date; id: string } | undefined;
    limit: number;
  },
): Promise<RunRow[]> {
  return db<RunRow[]>`
    select ${runColumns(db)} from stream_settlement_runs
    where (${filter.outcome ?? null}::text is null or outcome = ${filter.outcome ?? null}::text)
      and (${filter.after?.startedAt ?? null}::timestamptz is null
           or (started_at, id) < (${filter.after?.startedAt ?? null}::timestamptz, ${filter.after?.id ?? null}::uuid))
    order by started_at desc, id desc
    limit ${filter.limit}::int`;
}

export type StuckRunRow = RunRow & { runningSeconds: number };

/** Runs still `running` more than `olderThanSeconds` after they started, oldest first (partial index). */
export async function selectStuckRuns(
  db: Executor,
  olderThanSeconds: number,
  limit: number,
): Promise<StuckRunRow[]> {
  return db<StuckRunRow[]>`
    select ${runColumns(db)}, extract(epoch from now() - started_at)::float8 as "runningSeconds"
    from stream_settlement_runs
    where outcome = 'running' and started_at < now() - make_interval(secs => ${olderThanSeconds}::int)
    order by started_at, id
    limit ${limit}::int`;
}

/**
 * Closes the given runs as `abandoned`, guarded by `outcome = 'running'` and the same age, so a
 * run that finished meanwhile is left alone. Returns the ids it closed.
 */
export async function abandonRuns(
  db: Executor,
  input: { runIds: readonly string[]; olderThanSeconds: number; reason: string },
): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    update stream_settlement_runs set outcome = 'abandoned', error = ${input.reason}::text, finished_at = now()
    where id = any(${input.runIds as string[]}::uuid[])
      and outcome = any(${runOutcomes.abandoned.from as unknown as string[]}::text[])
      and started_at < now() - make_interval(secs => ${input.olderThanSeconds}::int)
    returning id`;
  return rows.map((row) => row.id);
}

/** Seconds since the oldest run still `running` started, 0 when none is (the partial index). */
export async function selectOldestRunningRunAge(db: Executor): Promise<number> {
  const [row] = await db<{ ageSeconds: number }[]>`
    select coalesce(extract(epoch from now() - min(started_at)), 0)::float8 as "ageSeconds"
    from stream_settlement_runs where outcome = 'running'`;
  return row?.ageSeconds ?? 0;
}

export type OverdueStreamRow = {
  id: string;
  asset: string;
  precision: number;
  payerAccountId: string;
  recipientAccountId: string | null;
  recipientAddress: string | null;
  nextSettlementAt: Date;
  overdueSeconds: number;
  settledMinor: bigint;
  totalMinor: bigint;
};

/** Active streams due more than `olderThanSeconds` ago and not settled, longest overdue first (`streams_due`). */
export async function selectOverdueStreams(
  db: Executor,
  olderThanSeconds: number,
  limit: number,
): Promise<OverdueStreamRow[]> {
  return db<OverdueStreamRow[]>`
    select s.id, s.asset, a.precision, s.payer_account_id as "payerAccountId",
           s.recipient_account_id as "recipientAccountId", s.recipient_address as "recipientAddress",
           s.next_settlement_at as "nextSettlementAt",
           extract(epoch from now() - s.next_settlement_at)::float8 as "overdueSeconds",
           s.settled_minor as "settledMinor", s.total_minor as "totalMinor"
    from streams s join assets a on a.code = s.asset
    where s.state = 'active' and s.next_settlement_at < now() - make_interval(secs => ${olderThanSeconds}::int)
    order by s.next_settlement_at, s.id
    limit ${limit}::int`;
}

/** How many active streams are overdue past `olderThanSeconds` (the `streams_due` index). */
export async function countOverdueStreams(db: Executor, olderThanSeconds: number): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from streams
    where state = 'active' and next_settlement_at < now() - make_interval(secs => ${olderThanSeconds}::int)`;
  return row?.count ?? 0;
}

/** How many runs are still `running` more than `olderThanSeconds` after they started (partial index). */
export async function countStuckRuns(db: Executor, olderThanSeconds: number): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from stream_settlement_runs
    where outcome = 'running' and started_at < now() - make_interval(secs => ${olderThanSeconds}::int)`;
  return row?.count ?? 0;
}

export type AttentionRunRow = RunRow & { runningSeconds: number; payouts: number; payoutsOpen: number };

/**
 * The runs a person must look at, oldest first: those still `running` more than
 * `olderThanSeconds` after they started, and those abandoned whose `stream_run_stuck` finding is
 * still open; each with how many payouts its settlements created and how many are not final yet.
 */
export async function selectRunsNeedingAttention(
  db: Executor,
  olderThanSeconds: number,
  limit: number,
): Promise<AttentionRunRow[]> {
  return db<AttentionRunRow[]>`
    select ${runColumns(db)},
           extract(epoch from coalesce(r.finished_at, now()) - r.started_at)::float8 as "runningSeconds",
           (select count(p.id)::int from stream_settlements s join payouts p on p.id = s.payout_id
            where s.run_id = r.id) as payouts,
           (select count(p.id)::int from stream_settlements s join payouts p on p.id = s.payout_id
            where s.run_id = r.id and p.state = any(${openPayoutStates as unknown as string[]}::text[])) as "payoutsOpen"
    from stream_settlement_runs r
    where (r.outcome = 'running' and r.started_at < now() - make_interval(secs => ${olderThanSeconds}::int))
       or (r.outcome = 'abandoned' and exists (
             select 1 from reconciliation_findings f
             where f.kind = 'stream_run_stuck' and f.subject = r.id::text and f.resolved_at is null))
    order by r.started_at, r.id
    limit ${limit}::int`;
}

export type RunSettlementRow = {
  streamId: string;
  periodIndex: number;
  amountMinor: bigint;
  precision: number;
  asset: string;
  recipient: string;
  payoutId: string | null;
  payoutState: string | null;
};

/** A run's settlements, in the order it made them, with each payout's state; at most `limit`. */
export async function selectRunSettlements(
  db: Executor,
  runId: string,
  limit: number,
): Promise<RunSettlementRow[]> {
  return db<RunSettlementRow[]>`
    select s.stream_id as "streamId", s.period_index as "periodIndex", s.amount_minor as "amountMinor",
           a.precision, st.asset, coalesce(st.recipient_account_id::text, st.recipient_address) as recipient,
           s.payout_id as "payoutId", p.state as "payoutState"
    from stream_settlements s
    join streams st on st.id = s.stream_id
    join assets a on a.code = st.asset
    left join payouts p on p.id = s.payout_id
    where s.run_id = ${runId}::uuid
    order by s.id
    limit ${limit}::int`;
}
