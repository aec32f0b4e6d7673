import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postJournal } from '../src/ledger/service.ts';
import { rateLimitMax } from '../src/platform/config.ts';
import type { Sql } from '../src/platform/db/types.ts';
import { benchDatabase, cliPath, locatePgbench, percentile, startServer } from './support.ts';

/** Limits of one run: bounded in accounts, clients and seconds, so it always ends by itself. */
const accountsCount = 1_000;
const clients = Math.min(64, Math.max(1, Number(process.env.BENCH_CLIENTS ?? 16)));
const phaseSeconds = Math.min(60, Math.max(2, Number(process.env.BENCH_SECONDS ?? 20)));
/** A phase ends at its deadline or after this many requests, whichever comes first. */
const requestsPerPhaseMax = 500_000;
const fundingBatchMax = 150;
const fundingMinor = 1_000_000_000_000n;

type Figures = { label: string; transfersPerSecond: number; p50Ms: number; p99Ms: number; errors: number };

async function seedAccounts(sql: Sql): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`
    insert into accounts (type, asset) select 'customer', 'XLM' from generate_series(1, ${accountsCount}::int) returning id`;
  const ids = rows.map((row) => row.id);
  const [fees] = await sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = 'XLM'`;
  for (let start = 0; start < ids.length; start += fundingBatchMax) {
    const batch = ids.slice(start, start + fundingBatchMax);
    await sql.begin((tx) =>
      postJournal(tx, {
        kind: 'bench_funding',
        entries: [
          { accountId: fees?.id ?? '', amountMinor: -fundingMinor * BigInt(batch.length) },
          ...batch.map((accountId) => ({ accountId, amountMinor: fundingMinor })),
        ],
      }),
    );
  }
  await sql`create table bench_accounts as select row_number() over (order by id)::int as n, id from accounts where type = 'customer'`;
  await sql`create unique index on bench_accounts (n)`;
  return (await sql<{ id: string }[]>`select id from bench_accounts order by n`).map((row) => row.id);
}

/** The API's transfer as raw SQL: the same reservation, reads, locks, writes and completion. */
function pgbenchScript(hot: boolean): string {
  return `
\\set key random(1, 9000000000000000000)
${hot ? '\\set src 1\n\\set dst random(2, :naccounts)' : '\\set src random(1, :naccounts)\n\\set off random(1, :naccounts - 1)\n\\set dst ((:src - 1 + :off) % :naccounts) + 1'}
INSERT INTO idempotency_keys (caller, key, fingerprint, state) VALUES ('pgbench', ':client_id-:key', 'f', 'in_flight');
BEGIN;
SELECT payments_mode FROM payment_controls WHERE singleton;
SELECT a.id, a.asset, a.balance_minor FROM accounts a JOIN assets s ON s.code = a.asset JOIN bench_accounts b ON b.id = a.id WHERE b.n IN (:src, :dst) ORDER BY a.id FOR UPDATE OF a;
WITH j AS (INSERT INTO journal_transactions (id, kind) VALUES (gen_random_uuid(), 'transfer') RETURNING id)
INSERT INTO entries (journal_id, account_id, asset, amount_minor)
SELECT j.id, b.id, 'XLM', CASE WHEN b.n = :src THEN -1 ELSE 1 END FROM j, bench_accounts b WHERE b.n IN (:src, :dst);
UPDATE accounts a SET balance_minor = a.balance_minor + CASE WHEN b.n = :src THEN -1 ELSE 1 END FROM bench_accounts b WHERE b.id = a.id AND b.n IN (:src, :dst);
INSERT INTO audit_log (actor, action, subject_type, subject_id) VALUES ('pgbench', 'transfer.posted', 'journal_transaction', ':key');
UPDATE idempotency_keys SET state = 'completed', status_code = 201, response_body = '{}', completed_at = now() WHERE caller = 'pgbench' AND key = ':client_id-:key';
COMMIT;
`;
}

async function runPgbench(pgbench: string, url: string, hot: boolean): Promise<Figures> {
  const dir = await mkdtemp(join(tmpdir(), 'settledesk-pgbench-'));
  const script = join(dir, 'transfer.sql');
  await writeFile(script, pgbenchScript(hot));
  execFileSync(
    pgbench,
    [
      '-n',
      '-c',
      String(clients),
      '-j',
      '2',
      '-T',
      String(phaseSeconds),
      '-f',
      script,
      '-D',
      `naccounts=${accountsCount}`,
      '-l',
      '--log-prefix',
      join(dir, 'log'),
      url,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const latenciesMs: number[] = [];
  let failures = 0;
  for (const file of (await readdir(dir)).filter((name) => name.startsWith('log'))) {
    for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
      const fields = line.split(' ');
      if (fields.length < 3) continue;
      if (fields[2] === 'failed') failures += 1;
      else latenciesMs.push(Number(fields[2]) / 1000);
    }
  }
  latenciesMs.sort((a, b) => a - b);
  return {
    label: `pgbench (raw SQL), ${hot ? 'hot account' : 'uniform'}`,
    transfersPerSecond: latenciesMs.length / phaseSeconds,
    p50Ms: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    errors: failures,
  };
}

/** node:http with keep-alive: the lightest client Node has, so the generator steals little CPU. */
function post(agent: Agent, url: string, token: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'idempotency-key': randomUUID(),
        },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

async function runApi(url: string, token: string, ids: readonly string[], hot: boolean): Promise<Figures> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const latenciesMs: number[] = [];
  let errors = 0;
  const deadline = performance.now() + phaseSeconds * 1000;
  const pick = () => Math.floor(Math.random() * ids.length);
  let sent = 0;
  const client = async () => {
    while (performance.now() < deadline && sent < requestsPerPhaseMax) {
      sent += 1;
      const source = hot ? 0 : pick();
      let destination = hot ? 1 + Math.floor(Math.random() * (ids.length - 1)) : pick();
      if (destination === source) destination = (source + 1) % ids.length;
      const started = performance.now();
      const body = JSON.stringify({
        sourceAccountId: ids[source],
        destinationAccountId: ids[destination],
        amount: '0.0000001',
      });
      const status = await post(agent, `${url}/v1/transfers`, token, body);
      if (status === 201) latenciesMs.push(performance.now() - started);
      else errors += 1;
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  agent.destroy();
  latenciesMs.sort((a, b) => a - b);
  return {
    label: `HTTP API, ${hot ? 'hot account' : 'uniform'}`,
    transfersPerSecond: latenciesMs.length / phaseSeconds,
    p50Ms: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    errors,
  };
}

function line(figures: Figures): string {
  return `${figures.label.padEnd(34)} ${figures.transfersPerSecond.toFixed(0).padStart(7)} transfers/s   p50 ${figures.p50Ms.toFixed(2).padStart(7)} ms   p99 ${figures.p99Ms.toFixed(2).padStart(7)} ms   errors ${figures.errors}`;
}

export async function benchTransfers(): Promise<void> {
  const pgbench = locatePgbench();
  const db = await benchDatabase();
  const env = {
    DATABASE_URL: db.url,
    SETTLEDESK_KEYRING_KEY: randomBytes(32).toString('base64'),
    SETTLEDESK_DATA_DIR: await mkdtemp(join(tmpdir(), 'settledesk-bench-data-')),
    DATABASE_POOL_MAX: String(clients + 8),
    // One caller at full speed: the limit is still counted (its cost is measured), never reached.
    RATE_LIMIT_CALLER_MAX: String(rateLimitMax),
  };
  try {
    const ids = await seedAccounts(db.sql);
    const token = JSON.parse(
      execFileSync(
        process.execPath,
        [cliPath, '--json', 'token', 'issue', '--sub', 'bench', '--role', 'service'],
        {
          env: { ...process.env, ...env },
          encoding: 'utf8',
        },
      ),
    ).token as string;
    const server = await startServer(env);
    process.stdout.write(
      `${accountsCount} accounts, ${clients} concurrent clients, ${phaseSeconds} s per phase, pgbench ${pgbench}\n`,
    );
    try {
      for (const hot of [false, true]) {
        const reference = await runPgbench(pgbench, db.url, hot);
        const api = await runApi(server.url, token, ids, hot);
        process.stdout.write(`${line(reference)}\n${line(api)}\n`);
        process.stdout.write(
          `ratio API / pgbench, ${hot ? 'hot account' : 'uniform'}: ${(api.transfersPerSecond / reference.transfersPerSecond).toFixed(2)}\n`,
        );
      }
    } finally {
      await server.stop();
    }
    const [imbalance] = await db.sql`select asset from entries group by asset having sum(amount_minor) <> 0`;
    process.stdout.write(imbalance ? 'LEDGER IMBALANCED after the run\n' : 'ledger balanced after the run\n');
  } finally {
    await db.close();
  }
}
