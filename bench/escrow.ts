import { createHold, moveFromHold } from '../src/escrow/service.ts';
import { loadConfig } from '../src/platform/config.ts';
import { withTransaction } from '../src/platform/db/transaction.ts';
import type { Sql } from '../src/platform/db/types.ts';
import { createLogger } from '../src/platform/logging.ts';
import { reconciliationSettings } from '../src/reconciliation/context.ts';
import { runDetector } from '../src/reconciliation/runner.ts';
import { benchDatabase, pgbenchLatencyMs, pgbenchScript, settleBalances } from './support.ts';

/**
 * The escrow detector's incremental run at 100,000 and at 1,000,000 ledger entries of escrow
 * history (holds opened and released, seeded with generate_series), with the same 1,000 holds
 * open at both sizes. Each timed run follows new work done through the service's own path (holds
 * opened and partly released). Two references from the same run: pgbench running the detector's
 * two statements (the database floor), and a full scan that recomputes `escrow` from its entries
 * and every hold ever opened (what a detector reading history would cost).
 */

const customersCount = 1_000;
const openHoldsCount = 1_000;
const entriesFirstStep = 100_000;
const entriesTarget = 1_000_000;
/** A closed hold leaves four entries: payer → escrow, then escrow → payee. */
const entriesPerClosedHold = 4;
const seedChunkHolds = 25_000;
const holdMinor = 1_000n;
const newHoldsPerRound = 100;
const repeats = 5;
const pgbenchTransactions = 200;

/** Holds opened with their journal payer → escrow, released whole (closed) or still open. */
async function seedHolds(sql: Sql, count: number, open: boolean): Promise<void> {
  for (let done = 0; done < count; done += seedChunkHolds) {
    const chunk = Math.min(seedChunkHolds, count - done);
    await sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`
        with customers as (
          select id, row_number() over (order by id) - 1 as n from accounts where type = 'customer'
        ), escrow as (select id from accounts where type = 'escrow' and asset = 'XLM'),
        holds as (
          select gen_random_uuid() as id, gen_random_uuid() as hold_journal, gen_random_uuid() as release_journal,
                 p.id as payer, q.id as payee
          from generate_series(1, ${chunk}::int) g
          join customers p on p.n = g % ${customersCount}::int
          join customers q on q.n = (g + 1) % ${customersCount}::int
        ), journals as (
          insert into journal_transactions (id, kind)
          select hold_journal, 'escrow_hold' from holds
          union all select release_journal, 'escrow_release' from holds where not ${open}::boolean
        ), entries_written as (
          insert into entries (journal_id, account_id, asset, amount_minor)
          select hold_journal, payer, 'XLM', -${holdMinor}::int8 from holds
          union all select hold_journal, (select id from escrow), 'XLM', ${holdMinor}::int8 from holds
          union all select release_journal, (select id from escrow), 'XLM', -${holdMinor}::int8 from holds
            where not ${open}::boolean
          union all select release_journal, payee, 'XLM', ${holdMinor}::int8 from holds where not ${open}::boolean
        )
        insert into escrow_holds (id, payer_account_id, payee_account_id, asset, amount_minor, released_minor,
                                  state, state_reason, created_by, hold_journal_id)
        select id, payer, payee, 'XLM', ${holdMinor}::int8, case when ${open}::boolean then 0 else ${holdMinor}::int8 end,
               case when ${open}::boolean then 'held' else 'closed' end, 'bench', 'bench', hold_journal
        from holds`;
    });
  }
}

async function entriesCount(sql: Sql): Promise<number> {
  const [row] = await sql<{ count: number }[]>`select count(*)::int as count from entries`;
  return row?.count ?? 0;
}

/** New work through the service's own path: holds opened, half of them released in part. */
async function newHolds(sql: Sql): Promise<void> {
  const pairs = await sql<{ payer: string; payee: string }[]>`
    select a.id as payer, b.id as payee
    from (select id, row_number() over (order by balance_minor desc, id) as n from accounts where type = 'customer') a
    join (select id, row_number() over (order by balance_minor desc, id) as n from accounts where type = 'customer') b
      on b.n = a.n + 1
    where a.n <= ${newHoldsPerRound}::int order by a.n`;
  const actor = { name: 'bench', requestId: undefined };
  for (const [index, pair] of pairs.entries()) {
    const hold = await withTransaction(sql, (tx) =>
      createHold(
        tx,
        { payerAccountId: pair.payer, payeeAccountId: pair.payee, asset: 'XLM', amount: '0.00001' },
        actor,
      ),
    );
    if (index % 2 === 0) {
      await withTransaction(sql, (tx) =>
        moveFromHold(tx, { holdId: hold.id, kind: 'release', amount: '0.000005' }, actor),
      );
    }
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** The detector's two statements, as it runs them, in one repeatable-read transaction. */
const detectorSql = `
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT a.id, a.asset, s.precision, a.balance_minor FROM accounts a JOIN assets s ON s.code = a.asset WHERE a.type = 'escrow' ORDER BY a.asset;
SELECT asset, sum(amount_minor - released_minor - refunded_minor)::bigint FROM escrow_holds WHERE state IN ('held', 'partially_released', 'disputed') GROUP BY asset;
COMMIT;
`;

/** What a detector reading history would do: escrow from its entries, and every hold ever opened. */
async function fullScanMs(sql: Sql): Promise<number> {
  const started = performance.now();
  await sql`
    select (select sum(e.amount_minor) from entries e join accounts a on a.id = e.account_id
            where a.type = 'escrow') as escrow,
           (select sum(amount_minor - released_minor - refunded_minor) from escrow_holds) as remaining`;
  return performance.now() - started;
}

type Figures = { entries: number; detectorMs: number; fullScanMs: number; pgbenchMs: number };

async function measure(sql: Sql, url: string, script: string): Promise<Figures> {
  const deps = {
    sql,
    logger: createLogger('silent'),
    settings: reconciliationSettings(loadConfig({}).reconciliation),
  };
  await runDetector(deps, 'escrow');
  const detector: number[] = [];
  const scans: number[] = [];
  for (let round = 0; round < repeats; round += 1) {
    await newHolds(sql);
    const report = await runDetector(deps, 'escrow');
    if (report.outcome !== 'completed') {
      throw new Error(`the escrow detector ended ${report.outcome}`);
    }
    detector.push(report.durationMs);
    scans.push(await fullScanMs(sql));
  }
  const [open] = await sql<{ count: number }[]>`
    select count(*)::int from reconciliation_findings where kind = 'escrow_leak' and resolved_at is null`;
  if ((open?.count ?? 0) !== 0) throw new Error('the seeded escrow leaks');
  return {
    entries: await entriesCount(sql),
    detectorMs: median(detector),
    fullScanMs: median(scans),
    pgbenchMs: pgbenchLatencyMs(url, script, pgbenchTransactions),
  };
}

export async function benchEscrow(): Promise<void> {
  const db = await benchDatabase();
  try {
    const { sql, url } = db;
    const script = await pgbenchScript('escrow', detectorSql);
    const started = performance.now();
    await sql`insert into accounts (type, asset) select 'customer', 'XLM' from generate_series(1, ${customersCount}::int)`;
    await sql`
      insert into journal_transactions (id, kind) values ('00000000-0000-4000-8000-00000000f00d', 'bench_fund')`;
    await sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`
        insert into entries (journal_id, account_id, asset, amount_minor)
        select '00000000-0000-4000-8000-00000000f00d'::uuid, id, 'XLM', 1000000000::int8 from accounts
        where type = 'customer'
        union all
        select '00000000-0000-4000-8000-00000000f00d'::uuid, (select id from accounts where type = 'fees' and asset = 'XLM'),
               'XLM', -1000000000::int8 * ${customersCount}::int`;
    });
    await seedHolds(sql, openHoldsCount, true);
    const closedFirst = Math.floor((entriesFirstStep - openHoldsCount * 2) / entriesPerClosedHold);
    await seedHolds(sql, closedFirst, false);
    await settleBalances(sql);
    const small = await measure(sql, url, script);
    const closedMore = Math.floor((entriesTarget - entriesFirstStep) / entriesPerClosedHold);
    await seedHolds(sql, closedMore, false);
    await settleBalances(sql);
    const large = await measure(sql, url, script);
    process.stdout.write(
      `seeded and measured in ${((performance.now() - started) / 1000).toFixed(1)} s; ${openHoldsCount} holds open at both sizes, ${newHoldsPerRound} new ones before each of ${repeats} runs (median)\n`,
    );
    const rows: [string, number, number][] = [
      ['escrow detector, incremental run', small.detectorMs, large.detectorMs],
      ['reference: pgbench, its SQL', small.pgbenchMs, large.pgbenchMs],
      ['reference: full scan of history', small.fullScanMs, large.fullScanMs],
    ];
    process.stdout.write(`entries: ${small.entries} then ${large.entries}\n`);
    for (const [label, at100k, at1m] of rows) {
      process.stdout.write(
        `  ${label.padEnd(34)} at ${small.entries} ${at100k.toFixed(2).padStart(9)} ms   at ${large.entries} ${at1m.toFixed(2).padStart(9)} ms   ratio ${(at1m / at100k).toFixed(2)}\n`,
      );
    }
    process.stdout.write(
      `detector / pgbench: ${(small.detectorMs / small.pgbenchMs).toFixed(1)} then ${(large.detectorMs / large.pgbenchMs).toFixed(1)}\n`,
    );
  } finally {
    await db.close();
  }
}
