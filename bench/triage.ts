import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sql } from '../src/platform/db/types.ts';
import { timeIncrementalRuns } from './detectors.ts';
import {
  benchDatabase,
  cliPath,
  percentile,
  pgbenchLatencyMs,
  settleBalances,
  startServer,
} from './support.ts';

/**
 * `GET /internal/incident/summary` on a database with 1,000,000 entries and 100,000 payouts: p50
 * and p99 over 100 calls through a real HTTP server, against two references measured in the same
 * run: `/health/live` on the same server (the HTTP floor) and pgbench running the summary's SQL
 * (the database floor). Then the detectors' incremental runs at 100k and at 1M entries, to show
 * that their cost follows new data, not history.
 */

const customersCount = 10_000;
const entriesTarget = 1_000_000;
const entriesFirstStep = 100_000;
const payoutsCount = 100_000;
const stuckPayoutsCount = 1_000;
const seedChunkJournals = 50_000;
const callsCount = 100;
const warmupCalls = 5;

/** Seeds journals of two entries each (fees → customer) with triggers off, then sets balances. */
async function seedEntries(sql: Sql, journalsCount: number): Promise<void> {
  for (let done = 0; done < journalsCount; done += seedChunkJournals) {
    const count = Math.min(seedChunkJournals, journalsCount - done);
    await sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`
        with j as (
          insert into journal_transactions (id, kind)
          select gen_random_uuid(), 'bench_seed' from generate_series(1, ${count}::int) returning id
        ), numbered as (select id, row_number() over () as n from j),
        customers as (select id, row_number() over (order by id) as n from accounts where type = 'customer')
        insert into entries (journal_id, account_id, asset, amount_minor)
        select numbered.id, c.id, 'XLM', side.amount
        from numbered
        join customers c on c.n = (numbered.n % ${customersCount}::int) + 1
        cross join (values (1000::bigint)) side(amount)
        union all
        select numbered.id, (select id from accounts where type = 'fees' and asset = 'XLM'), 'XLM', -1000
        from numbered`;
    });
  }
  await settleBalances(sql);
}

async function seedPayouts(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    // Payouts reuse the seeded journals (a payout needs an accept and a final journal to exist), so
    // that they can be seeded before the first measurement and both measurements see 100k payouts.
    await tx`
      with journals as (
        select id, row_number() over (order by id) as n from journal_transactions where kind = 'bench_seed'
      ), sized as (select count(*) as total from journals),
      numbered as (select n from generate_series(1, ${payoutsCount}::int) n),
      picked as (
        select numbered.n, a.id as accept_id, f.id as final_id
        from numbered cross join sized
        join journals a on a.n = ((numbered.n - 1) % sized.total) + 1
        join journals f on f.n = (numbered.n % sized.total) + 1
      ), source as (select id from accounts where type = 'customer' limit 1)
      insert into payouts (id, source_account_id, asset, amount_minor, destination, memo_type, state, state_reason,
                           created_by, accept_journal_id, final_journal_id, created_at)
      select gen_random_uuid(), (select id from source), 'XLM', 1000,
             'GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7', 'none',
             case when p.n <= ${stuckPayoutsCount}::int then 'accepted' else 'settled' end, 'bench',
             'bench', p.accept_id, case when p.n <= ${stuckPayoutsCount}::int then null else p.final_id end,
             now() - interval '2 hours'
      from picked p`;
  });
  await sql`analyze`;
}

async function timeCalls(url: string, token: string): Promise<number[]> {
  const headers = { authorization: `Bearer ${token}` };
  for (let call = 0; call < warmupCalls; call += 1) await (await fetch(url, { headers })).arrayBuffer();
  const timesMs: number[] = [];
  for (let call = 0; call < callsCount; call += 1) {
    const started = performance.now();
    const response = await fetch(url, { headers });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    timesMs.push(performance.now() - started);
  }
  return timesMs.sort((a, b) => a - b);
}

/** The statements the summary runs, as one pgbench transaction (they run concurrently in the API). */
const summarySql = `
SELECT payments_mode, payouts_frozen FROM payment_controls WHERE singleton;
SELECT code, precision FROM assets ORDER BY code;
SELECT asset, sum(balance_minor)::bigint FROM accounts GROUP BY asset ORDER BY asset;
SELECT state, count(*)::int, min(created_at) FROM payouts WHERE state IN ('accepted', 'submitted', 'manual_review') GROUP BY state ORDER BY state;
SELECT count(*)::int FROM payouts WHERE state IN ('accepted', 'submitted', 'manual_review') AND created_at < now() - make_interval(secs => 1800);
SELECT kind, count(*)::int FROM reconciliation_findings WHERE resolved_at IS NULL GROUP BY kind;
SELECT count(*)::int FROM inbound_webhooks WHERE state = 'dead_letter';
SELECT cursor, seen_ledger, seen_ledger_closed_at FROM deposit_watcher;
SELECT count(*)::int FROM proposals WHERE state = 'pending';
SELECT extract(epoch FROM now() - max(seen_at))::float8 FROM worker_heartbeats;
`;

export async function benchTriage(): Promise<void> {
  const db = await benchDatabase();
  try {
    const { sql } = db;
    await sql`insert into accounts (type, asset) select 'customer', 'XLM' from generate_series(1, ${customersCount}::int)`;
    let started = performance.now();
    await seedEntries(sql, entriesFirstStep / 2);
    await seedPayouts(sql);
    const at100k = await timeIncrementalRuns(db);
    await seedEntries(sql, (entriesTarget - entriesFirstStep) / 2);
    process.stdout.write(
      `seeded ${entriesTarget} entries and ${payoutsCount} payouts in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
    );
    const at1m = await timeIncrementalRuns(db);
    process.stdout.write('detector incremental runs (after 1,000 new entries), ms:\n');
    for (const [name, ms] of Object.entries(at100k)) {
      process.stdout.write(
        `  ${name.padEnd(20)} at 100k entries ${ms.toFixed(1).padStart(8)}   at 1M ${(at1m[name] ?? Number.NaN).toFixed(1).padStart(8)}   ratio ${((at1m[name] ?? 0) / ms).toFixed(2)}\n`,
      );
    }

    const env = {
      DATABASE_URL: db.url,
      SETTLEDESK_KEYRING_KEY: randomBytes(32).toString('base64'),
      SETTLEDESK_DATA_DIR: await mkdtemp(join(tmpdir(), 'settledesk-bench-data-')),
    };
    const server = await startServer(env);
    try {
      const token = execFileSync(
        process.execPath,
        [cliPath, 'token', 'issue', '--sub', 'bench', '--role', 'operator'],
        { env: { ...process.env, ...env, LOG_LEVEL: 'silent' }, encoding: 'utf8' },
      ).trim();
      started = performance.now();
      const summary = await timeCalls(`${server.url}/internal/incident/summary`, token);
      const live = await timeCalls(`${server.url}/health/live`, token);
      const folder = await mkdtemp(join(tmpdir(), 'settledesk-bench-triage-'));
      const script = join(folder, 'summary.sql');
      await writeFile(script, summarySql);
      const sqlMs = pgbenchLatencyMs(db.url, script, callsCount);
      const p99 = percentile(summary, 0.99);
      process.stdout.write(
        `${[
          `summary over ${callsCount} calls: p50 ${percentile(summary, 0.5).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms (target < 100 ms: ${p99 < 100 ? 'met' : 'NOT met'})`,
          `reference /health/live: p50 ${percentile(live, 0.5).toFixed(1)} ms, p99 ${percentile(live, 0.99).toFixed(1)} ms; summary p99 / live p99 = ${(p99 / percentile(live, 0.99)).toFixed(1)}`,
          `reference pgbench, the summary's SQL in one transaction: ${sqlMs.toFixed(2)} ms average; summary p50 / pgbench = ${(percentile(summary, 0.5) / sqlMs).toFixed(1)}`,
        ].join('\n')}\n`,
      );
    } finally {
      await server.stop();
    }
  } finally {
    await db.close();
  }
}
