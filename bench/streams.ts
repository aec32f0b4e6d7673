import { selectOpenHoldSums } from '../src/escrow/data.ts';
import { selectImbalances } from '../src/ledger/data.ts';
import { postJournal } from '../src/ledger/service.ts';
import { formatAmount } from '../src/money/money.ts';
import { withTransaction } from '../src/platform/db/transaction.ts';
import type { Sql } from '../src/platform/db/types.ts';
import { selectSettlementLag } from '../src/streams/data.ts';
import { createStream, databaseNow } from '../src/streams/service.ts';
import { runSettlement, settlementBatchMax } from '../src/streams/settlement.ts';
import { type DetectorFigures, detectorReport, measureDetector } from './streams-detector.ts';
import { benchDatabase, knob, pgbenchLatencyMs, pgbenchScript } from './support.ts';

/**
 * One settlement run over 10,000 active streams (`BENCH_STREAMS`), all due, and the settlement-lag detector that
 * exists for streams (`selectSettlementLag`, what `stream_settlement_lag_seconds` reads when
 * scraped). Streams are funded through the service's own path (`createStream`), each to an
 * account of its own. References from the same run: the same settlements written by plain SQL
 * (one set-based statement per batch of 100, the same rows: journals, entries, balances, holds,
 * movements, settlements, streams, audit rows and events), and pgbench running the lag's SQL.
 * Then the `stuck_settlements` detector as the reconciliation task runs it (bench/streams-detector.ts)
 * with every stream overdue, with none, and with `someOverdue` of them, each against pgbench on
 * its statements.
 */

const streamsCount = knob('BENCH_STREAMS', 10_000, 100, 100_000);
const payersCount = Math.min(100, streamsCount / 10);
const intervalSeconds = 60;
const streamTotalMinor = 1_000_000_000n;
const precision = 7;
const lagCalls = 200;
const pgbenchTransactions = 200;
const minuteMs = 60_000;
const dayMs = 24 * 60 * minuteMs;
const runsAheadMs = 5 * minuteMs;
/** Streams made overdue again for the detector's last measure, as if runs had missed them. */
const someOverdue = 100;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function dueCount(sql: Sql, asOf: Date): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from streams
    where state = 'active' and next_settlement_at <= ${asOf}::timestamptz`;
  return row?.count ?? 0;
}

async function rowsCount(sql: Sql, table: 'audit_log' | 'merchant_webhook_events'): Promise<number> {
  const [row] =
    table === 'audit_log'
      ? await sql<{ count: number }[]>`select count(*)::int as count from audit_log`
      : await sql<{ count: number }[]>`select count(*)::int as count from merchant_webhook_events`;
  return row?.count ?? 0;
}

/** 100 funded payers and a stream from one of them to each of 10,000 fresh accounts, through createStream, one transaction per payer. */
async function seedStreams(sql: Sql, start: Date, end: Date): Promise<void> {
  const payers = await sql<{ id: string }[]>`
    insert into accounts (type, asset) select 'customer', 'XLM' from generate_series(1, ${payersCount}::int)
    returning id`;
  const recipients = await sql<{ id: string }[]>`
    insert into accounts (type, asset) select 'customer', 'XLM' from generate_series(1, ${streamsCount}::int)
    returning id`;
  const [fees] = await sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = 'XLM'`;
  const perPayer = (BigInt(streamsCount) / BigInt(payersCount)) * streamTotalMinor;
  await withTransaction(sql, (tx) =>
    postJournal(tx, {
      kind: 'bench_funding',
      entries: [
        { accountId: fees?.id ?? '', amountMinor: -perPayer * BigInt(payersCount) },
        ...payers.map((payer) => ({ accountId: payer.id, amountMinor: perPayer })),
      ],
    }),
  );
  const actor = { name: 'bench', requestId: undefined };
  // One transaction per payer: a transaction locks its accounts in one order (docs/ledger.md).
  for (const [payerIndex, payer] of payers.entries()) {
    await withTransaction(sql, async (tx) => {
      for (let index = payerIndex; index < streamsCount; index += payersCount) {
        await createStream(
          tx,
          {
            payerAccountId: payer.id,
            recipientAccountId: recipients[index]?.id ?? '',
            asset: 'XLM',
            totalAmount: formatAmount(streamTotalMinor, precision),
            startAt: start.toISOString(),
            endAt: end.toISOString(),
            settlement: { intervalSeconds },
          },
          actor,
        );
      }
    });
  }
  await sql`analyze`;
}

/**
 * The reference: what a run writes for `settlementBatchMax` due streams, as one set-based
 * statement in its own transaction (claim with skip locked, the escrow and recipient accounts
 * locked, a journal of two entries, the balances, the hold, its movement, the settlement, the
 * stream, `auditsPerStream` audit rows and `eventsPerStream` events per stream). Returns the
 * streams it settled.
 */
async function plainBatch(
  sql: Sql,
  input: { asOf: Date; escrowId: string; runId: string; auditsPerStream: number; eventsPerStream: number },
): Promise<number> {
  return sql.begin(async (tx) => {
    await tx`
      select a.id from accounts a
      where a.id = ${input.escrowId}::uuid or a.id in (
        select s.recipient_account_id from streams s
        where s.state = 'active' and s.next_settlement_at <= ${input.asOf}::timestamptz
        order by s.next_settlement_at, s.id limit ${settlementBatchMax}::int)
      order by a.id for update`;
    const [row] = await tx<{ settled: number }[]>`
      with due as (
        select s.id, s.hold_id, s.recipient_account_id as recipient, s.asset, gen_random_uuid() as journal_id,
               floor(extract(epoch from ${input.asOf}::timestamptz - s.start_at) / s.interval_seconds)::int as period,
               floor(extract(epoch from ${input.asOf}::timestamptz - s.start_at) * 1000 * s.total_minor
                     / (extract(epoch from s.end_at - s.start_at) * 1000))::int8 - s.settled_minor as amount,
               to_jsonb(s) as before
        from streams s join escrow_holds h on h.id = s.hold_id
        where s.state = 'active' and s.next_settlement_at <= ${input.asOf}::timestamptz
        order by s.next_settlement_at, s.id
        limit ${settlementBatchMax}::int
        for update of s, h skip locked
      ), journals as (
        insert into journal_transactions (id, kind, request_id)
        select journal_id, 'escrow_release', 'stream:' || id || ':period:' || period from due
      ), entries_written as (
        insert into entries (journal_id, account_id, asset, amount_minor)
        select journal_id, ${input.escrowId}::uuid, asset, -amount from due
        union all select journal_id, recipient, asset, amount from due
      ), balances as (
        update accounts a set balance_minor = a.balance_minor + d.delta
        from (select recipient as id, sum(amount)::int8 as delta from due group by recipient
              union all select ${input.escrowId}::uuid, -sum(amount)::int8 from due having count(*) > 0) d
        where a.id = d.id
      ), holds as (
        update escrow_holds h set released_minor = h.released_minor + d.amount, state = 'partially_released',
                                  state_reason = 'part of the amount was released or refunded', updated_at = now()
        from due d where h.id = d.hold_id
      ), movements as (
        insert into escrow_movements (hold_id, kind, amount_minor, cause, journal_id)
        select hold_id, 'release', amount, 'request', journal_id from due
      ), settlements as (
        insert into stream_settlements (stream_id, cause, run_id, period_index, amount_minor, as_of, journal_id)
        select id, 'run', ${input.runId}::uuid, period, amount, ${input.asOf}::timestamptz, journal_id from due
      ), audits as (
        insert into audit_log (actor, action, subject_type, subject_id, before, after, request_id)
        select 'bench', 'stream.settled', 'stream', d.id::text, d.before,
               d.before || jsonb_build_object('settledAmount', d.amount::text, 'journalId', d.journal_id),
               'stream:' || d.id || ':period:' || d.period
        from due d cross join generate_series(1, ${input.auditsPerStream}::int)
      ), events as (
        insert into merchant_webhook_events (id, type, account_id, body)
        select gen_random_uuid(), 'stream.settled', d.recipient,
               jsonb_build_object('type', 'stream.settled', 'data', d.before)::text
        from due d cross join generate_series(1, ${input.eventsPerStream}::int)
      ), streams_moved as (
        update streams s set settled_minor = s.settled_minor + d.amount,
               next_settlement_at = s.start_at + (d.period + 1) * s.interval_seconds * interval '1 second',
               state_reason = 'settled', updated_at = now()
        from due d where s.id = d.id
        returning s.id
      )
      select count(*)::int as settled from streams_moved`;
    return row?.settled ?? 0;
  });
}

/** The lag as the gauge reads it, `lagCalls` times through the service's connection: the median. */
async function lagMs(sql: Sql): Promise<{ ms: number; lagSeconds: number }> {
  const times: number[] = [];
  let lagSeconds = 0;
  for (let call = 0; call < lagCalls; call += 1) {
    const started = performance.now();
    lagSeconds = await selectSettlementLag(sql);
    times.push(performance.now() - started);
  }
  return { ms: median(times), lagSeconds };
}

const lagSql = `SELECT coalesce(extract(epoch from now() - min(next_settlement_at)), 0)::float8 FROM streams WHERE state = 'active' AND next_settlement_at <= now();\n`;

export async function benchStreams(): Promise<void> {
  const db = await benchDatabase();
  try {
    const { sql, url } = db;
    const script = await pgbenchScript('streams', lagSql);
    const seeded = performance.now();
    const now = await databaseNow(sql);
    const start = new Date(now.getTime() - 60 * minuteMs);
    await seedStreams(sql, start, new Date(now.getTime() + dayMs));
    process.stdout.write(
      `${streamsCount} active streams (${payersCount} payers, each stream to an account of its own, every ${intervalSeconds} s) funded with createStream in ${((performance.now() - seeded) / 1000).toFixed(1)} s\n`,
    );

    // The stuck-settlement detector with every stream overdue (due an hour ago).
    const detectorAll = await measureDetector(sql, url, `${streamsCount} overdue`);

    // The lag detector with every stream due, then one run as the job runs it (its bounds: batches of
    // 100, 50 a run), then runs until nothing is due.
    const lagDue = await lagMs(sql);
    const pgbenchDueMs = pgbenchLatencyMs(url, script, pgbenchTransactions);
    // Ahead of the clock by more than the runs take, so no stream falls due again before the
    // detector is measured with none due.
    const asOf = new Date((await databaseNow(sql)).getTime() + runsAheadMs);
    const [auditsBefore, eventsBefore] = [
      await rowsCount(sql, 'audit_log'),
      await rowsCount(sql, 'merchant_webhook_events'),
    ];
    const runs: { ms: number; settled: number }[] = [];
    while ((await dueCount(sql, asOf)) > 0) {
      const started = performance.now();
      const run = await runSettlement(sql, { asOf });
      if (run.outcome !== 'succeeded') throw new Error(`a run ended ${run.outcome}`);
      runs.push({ ms: performance.now() - started, settled: run.streamsSettled });
    }
    const settledByRuns = runs.reduce((sum, run) => sum + run.settled, 0);
    const auditsPerStream = Math.round(((await rowsCount(sql, 'audit_log')) - auditsBefore) / settledByRuns);
    const eventsPerStream = Math.round(
      ((await rowsCount(sql, 'merchant_webhook_events')) - eventsBefore) / settledByRuns,
    );
    const lagNone = await lagMs(sql);
    const pgbenchNoneMs = pgbenchLatencyMs(url, script, pgbenchTransactions);
    const detectorNone = await measureDetector(sql, url, 'none overdue');

    // The reference: the next period's settlements of the same streams, written by plain SQL.
    const referenceAsOf = new Date(asOf.getTime() + 10 * minuteMs);
    const [escrow] = await sql<
      { id: string }[]
    >`select id from accounts where type = 'escrow' and asset = 'XLM'`;
    const [referenceRun] = await sql<{ id: string }[]>`
      insert into stream_settlement_runs (id, as_of) values (gen_random_uuid(), ${referenceAsOf}::timestamptz)
      returning id`;
    const referenceStarted = performance.now();
    let settledByReference = 0;
    for (;;) {
      const settled = await plainBatch(sql, {
        asOf: referenceAsOf,
        escrowId: escrow?.id ?? '',
        runId: referenceRun?.id ?? '',
        auditsPerStream,
        eventsPerStream,
      });
      settledByReference += settled;
      if (settled < settlementBatchMax) break;
    }
    const referenceMs = performance.now() - referenceStarted;
    if (settledByReference !== streamsCount) throw new Error(`the reference settled ${settledByReference}`);
    if ((await selectImbalances(sql)).length > 0) throw new Error('the ledger does not sum to zero');
    const [escrowBalance] = await sql<{ balance: bigint }[]>`
      select balance_minor as balance from accounts where id = ${escrow?.id ?? ''}::uuid`;
    if (escrowBalance?.balance !== (await selectOpenHoldSums(sql)).get('XLM'))
      throw new Error('escrow differs from the open holds');
    // Some streams overdue again: their next settlement moved back half an hour.
    await sql`
      update streams set next_settlement_at = now() - interval '30 minutes'
      where id in (select id from streams where state = 'active' order by id limit ${someOverdue}::int)`;
    const detectorSome = await measureDetector(sql, url, `${someOverdue} overdue`);

    const first = runs[0];
    const runsMs = runs.reduce((sum, run) => sum + run.ms, 0);
    const perStream = (ms: number, count: number) => `${((ms / count) * 1000).toFixed(0)} µs a stream`;
    process.stdout.write(
      `settlement runs (${auditsPerStream} audit rows and ${eventsPerStream} events a settlement):\n`,
    );
    for (const [index, run] of runs.entries()) {
      process.stdout.write(
        `  run ${index + 1}: ${run.settled} streams in ${run.ms.toFixed(0)} ms (${perStream(run.ms, run.settled)})\n`,
      );
    }
    process.stdout.write(
      `  all ${settledByRuns} streams: ${runsMs.toFixed(0)} ms; reference, plain SQL in batches of ${settlementBatchMax}: ${settledByReference} streams in ${referenceMs.toFixed(0)} ms (${perStream(referenceMs, settledByReference)})\n`,
    );
    process.stdout.write(
      `  run / plain SQL, a stream: ${first ? (first.ms / first.settled / (referenceMs / settledByReference)).toFixed(2) : 'n/a'} (first run), ${(runsMs / settledByRuns / (referenceMs / settledByReference)).toFixed(2)} (all runs)\n`,
    );
    process.stdout.write('settlement lag detector (selectSettlementLag, median of 200 calls):\n');
    const lagRows: [string, { ms: number; lagSeconds: number }, number][] = [
      [`${streamsCount} due`, lagDue, pgbenchDueMs],
      ['none due', lagNone, pgbenchNoneMs],
    ];
    for (const [label, lag, pgbench] of lagRows) {
      process.stdout.write(
        `  ${label.padEnd(10)} ${lag.ms.toFixed(3)} ms (lag ${lag.lagSeconds.toFixed(0)} s); pgbench, its SQL ${pgbench.toFixed(3)} ms; ratio ${(lag.ms / pgbench).toFixed(2)}\n`,
      );
    }
    const detectorRows: [string, DetectorFigures][] = [
      [`${streamsCount} overdue`, detectorAll],
      ['none overdue', detectorNone],
      [`${someOverdue} overdue`, detectorSome],
    ];
    process.stdout.write(detectorReport(detectorRows));
  } finally {
    await db.close();
  }
}
