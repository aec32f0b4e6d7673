import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, withDatabase } from '../src/platform/db/connect.ts';
import { type EmbeddedDatabase, freePort, startEmbeddedPostgres } from '../src/platform/db/embedded.ts';
import { migrate } from '../src/platform/db/migrate.ts';
import type { Sql } from '../src/platform/db/types.ts';
import { createLogger } from '../src/platform/logging.ts';

const logger = createLogger('warn', process.stderr);
export const cliPath = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

export type BenchDatabase = { url: string; sql: Sql; close(): Promise<void> };

/** A fresh, migrated database: on DATABASE_URL's server when set, else on an embedded cluster. */
export async function benchDatabase(): Promise<BenchDatabase> {
  let embedded: EmbeddedDatabase | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dataDir = await mkdtemp(join(tmpdir(), 'settledesk-bench-'));
    await chmod(dataDir, 0o755);
    embedded = await startEmbeddedPostgres({
      dataDir,
      logger,
      database: 'postgres',
      settings: { max_connections: '200' },
    });
    adminUrl = embedded.url;
  }
  const name = `settledesk_bench_${Date.now()}`;
  const admin = connect({ url: adminUrl, poolMax: 1, logger });
  await admin.unsafe(`create database "${name}"`);
  const url = withDatabase(adminUrl, name);
  const sql = connect({ url, poolMax: 4, logger });
  await migrate(sql, url, logger);
  return {
    url,
    sql,
    close: async () => {
      await sql.end();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
      await embedded?.stop();
    },
  };
}

/** A whole-number setting from the environment, clamped to [min, max]; `fallback` when absent or not a number. */
export function knob(name: string, fallback: number, min: number, max: number): number {
  const value = Number(process.env[name] ?? fallback);
  return Math.min(max, Math.max(min, Number.isFinite(value) ? Math.round(value) : fallback));
}

/** pgbench from PATH or PostgreSQL's bin folders; installs Debian's postgresql-client if missing. */
export function locatePgbench(): string {
  const candidates = [
    ...(process.env.PATH ?? '').split(':').map((dir) => join(dir, 'pgbench')),
    ...(existsSync('/usr/lib/postgresql')
      ? readdirSync('/usr/lib/postgresql').map((version) => `/usr/lib/postgresql/${version}/bin/pgbench`)
      : []),
  ];
  const found = candidates.find((path) => existsSync(path));
  if (found) return found;
  try {
    process.stderr.write('pgbench not found: installing postgresql-client with apt-get…\n');
    execFileSync('apt-get', ['install', '-y', '-q', 'postgresql-client'], { stdio: 'inherit' });
  } catch {
    throw new Error(
      'pgbench is needed as the reference: install it (Debian: apt-get install postgresql-client) and rerun',
    );
  }
  return locatePgbench();
}

/** Sets every balance from its entries, after seeding with triggers off, then analyzes. */
export async function settleBalances(sql: Sql): Promise<void> {
  await sql`
    update accounts a set balance_minor = s.total
    from (select account_id, sum(amount_minor)::bigint as total from entries group by account_id) s
    where s.account_id = a.id and a.balance_minor <> s.total`;
  await sql`analyze`;
}

/** Writes a pgbench script into a fresh temporary folder and returns its path. */
export async function pgbenchScript(name: string, text: string): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), `settledesk-bench-${name}-`));
  const script = join(folder, `${name}.sql`);
  await writeFile(script, text);
  return script;
}

/** pgbench's average latency running `script` `transactions` times from one client, in ms. */
export function pgbenchLatencyMs(url: string, script: string, transactions: number): number {
  const output = execFileSync(
    locatePgbench(),
    ['-n', '-c', '1', '-t', String(transactions), '-f', script, url],
    {
      encoding: 'utf8',
    },
  );
  const match = /latency average = ([\d.]+) ms/.exec(output);
  if (!match) throw new Error(`pgbench printed no latency:\n${output}`);
  return Number(match[1]);
}

/**
 * Each transaction's latency, in ms, of pgbench running `script` `transactions` times from one
 * client: its per-transaction log (`-l`), written into a fresh temporary folder, so a median can be
 * compared with a median measured in the service.
 */
export async function pgbenchLatenciesMs(
  url: string,
  script: string,
  transactions: number,
): Promise<number[]> {
  const folder = await mkdtemp(join(tmpdir(), 'settledesk-bench-pgbench-log-'));
  execFileSync(
    locatePgbench(),
    [
      '-n',
      '-c',
      '1',
      '-t',
      String(transactions),
      '-l',
      `--log-prefix=${join(folder, 'log')}`,
      '-f',
      script,
      url,
    ],
    { encoding: 'utf8' },
  );
  const latencies: number[] = [];
  for (const file of readdirSync(folder)) {
    // Each line: client, transaction number, its latency in µs, script, then when it ended.
    for (const line of (await readFile(join(folder, file), 'utf8')).split('\n')) {
      const micros = Number(line.split(' ')[2]);
      if (line !== '' && Number.isFinite(micros)) latencies.push(micros / 1000);
    }
  }
  await rm(folder, { recursive: true });
  if (latencies.length !== transactions) {
    throw new Error(`pgbench logged ${latencies.length} transactions, expected ${transactions}`);
  }
  return latencies;
}

export type Server = { url: string; stop(): Promise<void> };

/**
 * The API in its own process, as in production, so the load generator does not share its event
 * loop. `BENCH_SERVER_NODE_ARGS` passes flags to that process (e.g. `--cpu-prof` to profile it).
 */
export async function startServer(env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '');
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, cliPath, 'serve'], {
    env: { ...process.env, ...env, PORT: String(port), SETTLEDESK_WORKER: 'false', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ready = await fetch(`${url}/health/ready`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        child.on('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export function percentile(sortedMs: readonly number[], fraction: number): number {
  if (sortedMs.length === 0) return Number.NaN;
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(fraction * sortedMs.length))] ?? Number.NaN;
}
