import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { postJournal } from '../ledger/service.ts';
import { connect, withDatabase } from '../platform/db/connect.ts';
import { startEmbeddedPostgres } from '../platform/db/embedded.ts';
import type { Sql } from '../platform/db/types.ts';
import { createLogger } from '../platform/logging.ts';
import { repositoryRoot } from '../runbooks/cells.ts';
import { assertTraversable, type DrillContext, type ServiceProcess } from './harness.ts';

/**
 * What the money drills share: a database of their own, `settledesk serve` with its job worker
 * and its in-process sandbox network, tokens, accounts funded the way db-failover funds them, a
 * scheduled task run now by the service's own worker, and the service's /metrics read back.
 */

/** Sandbox ledgers close this often in a drill: a payout settles within a second or two. */
const ledgerCloseMs = 200;
const taskJobMsMax = 30_000;
const metricsTimeoutMs = 5_000;

export type SandboxService = {
  service: ServiceProcess;
  /** The service's configuration, as the runbook's cells also get it. */
  env: Record<string, string>;
  /** A superuser connection to the drill's database. */
  sql: Sql;
  databaseUrl: string;
  tokens: { service: string; operator: string; admin: string };
};

/**
 * A database only this drill uses: a fresh one on the server of DATABASE_URL when it is set (its
 * role must be allowed to create databases; the drills need a superuser anyway), otherwise an
 * embedded PostgreSQL in the drill folder. Dropped or stopped when the drill ends.
 */
async function drillDatabase(context: DrillContext): Promise<string> {
  const adminUrl = process.env.DATABASE_URL;
  if (adminUrl !== undefined && adminUrl !== '') {
    const name = `settledesk_drill_${context.drill.replaceAll('-', '_')}_${randomBytes(4).toString('hex')}`;
    const admin = openSql(adminUrl, 1);
    try {
      await admin.unsafe(`create database "${name}"`);
    } finally {
      await admin.end();
    }
    context.defer(`drop database ${name}`, async () => {
      const dropper = openSql(adminUrl, 1);
      try {
        await dropper.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end();
      }
    });
    context.note(`database ${name} on the server of DATABASE_URL`);
    return withDatabase(adminUrl, name);
  }
  await assertTraversable(context.dir, 'PostgreSQL (run as the postgres user)');
  const embedded = await startEmbeddedPostgres({
    dataDir: join(context.dir, 'db'),
    logger: createLogger('silent'),
    // A throw-away cluster: durability would only slow the drill down.
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
  });
  context.defer('stop the embedded PostgreSQL', () => embedded.stop());
  context.note(`embedded PostgreSQL on 127.0.0.1:${embedded.port}`);
  return embedded.url;
}

export function openSql(url: string, poolMax = 2): Sql {
  return connect({ url, poolMax, logger: createLogger('silent'), applicationName: 'settledesk-drill' });
}

/**
 * `settledesk serve` (API, job worker, settlement engine, the sandbox in-process) on a database of
 * its own, with short timers, then a service, an operator and an admin token. The cells get the
 * same configuration, the operator token, the log file and the database URL.
 */
export async function startSandboxService(
  context: DrillContext,
  extraEnv: Record<string, string> = {},
): Promise<SandboxService> {
  const databaseUrl = await context.step('a database for the drill', () => drillDatabase(context));
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    SETTLEDESK_DATA_DIR: join(context.dir, 'data'),
    SANDBOX_PORT: '0',
    SANDBOX_LEDGER_CLOSE_MS: String(ledgerCloseMs),
    PAYOUT_POLL_MS: '100',
    WORKER_POLL_INTERVAL_MS: '100',
    DEPOSIT_WATCHER_POLL_MS: '200',
    STATUS_PROBE_INTERVAL_MS: '1000',
    LOG_LEVEL: 'info',
    ...extraEnv,
  };
  const service = await context.step('start settledesk serve with its sandbox network and job worker', () =>
    context.startService(env),
  );
  const sql = openSql(databaseUrl, 4);
  context.defer('close the drill database connections', () => sql.end({ timeout: 5 }));
  const tokens = await context.step('issue service, operator and admin tokens', async () => {
    const [serviceToken, operator, admin] = await Promise.all([
      issueToken(context, env, 'drill-merchant-app', 'service'),
      issueToken(context, env, 'drill-oncall', 'operator'),
      issueToken(context, env, 'admin-alice', 'admin'),
    ]);
    return { service: serviceToken, operator, admin };
  });
  Object.assign(context.env, env, {
    SETTLEDESK_URL: service.url,
    SETTLEDESK_TOKEN: tokens.operator,
    SETTLEDESK_OPERATOR: 'oncall-olga',
    LOG_FILE: service.logFile,
    // The cells' own settledesk commands log to stderr at the default level, not the service's.
    LOG_LEVEL: undefined,
  });
  return { service, env, sql, databaseUrl, tokens };
}

async function issueToken(
  context: DrillContext,
  env: Record<string, string>,
  subject: string,
  role: string,
): Promise<string> {
  const result = await context.cli(
    ['--json', 'token', 'issue', '--sub', subject, '--role', role, '--ttl', '1h'],
    env,
  );
  if (result.code !== 0) throw context.fail(`settledesk token issue exited ${result.code}: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { token: string }).token;
}

/** A call to the service's API; answers the status and the parsed JSON body. */
export async function api<T = Record<string, unknown>>(
  service: ServiceProcess,
  token: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${service.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(metricsTimeoutMs),
  });
  const text = await response.text();
  return { status: response.status, body: (text === '' ? {} : JSON.parse(text)) as T };
}

/** Customer accounts through the API; their money straight from the `fees` system account. */
export async function openFundedCustomers(
  context: DrillContext,
  drill: SandboxService,
  fundingMinor: readonly bigint[],
): Promise<string[]> {
  const ids: string[] = [];
  for (const [index] of fundingMinor.entries()) {
    const created = await api<{ id: string }>(drill.service, drill.tokens.service, 'POST', '/v1/accounts', {
      type: 'customer',
      asset: 'XLM',
      ownerRef: `${context.drill}-${index}`,
    });
    if (created.status !== 201) throw context.fail(`POST /v1/accounts answered ${created.status}`);
    ids.push(created.body.id);
  }
  const [fees] = await drill.sql<{ id: string }[]>`
    select id from accounts where type = 'fees' and asset = 'XLM'`;
  if (!fees) throw context.fail('no XLM fees account after migration');
  const total = fundingMinor.reduce((sum, amount) => sum + amount, 0n);
  await drill.sql.begin((tx) =>
    postJournal(tx, {
      kind: 'drill_funding',
      entries: [
        { accountId: fees.id, amountMinor: -total },
        ...ids.map((accountId, index) => ({ accountId, amountMinor: fundingMinor[index] ?? 0n })),
      ],
    }),
  );
  return ids;
}

/**
 * Runs a scheduled task now, in the service's own worker: the job its crontab line would add
 * (same task, same job key, one attempt), then waits until the worker has finished it. A task
 * that failed is reported with the job's last error.
 */
export async function runScheduledTask(drill: SandboxService, task: string): Promise<void> {
  const [job] = await drill.sql<{ id: string }[]>`
    select (graphile_worker.add_job(${task}::text, '{}'::json, job_key => ${task}::text,
                                    max_attempts => 1)).id::text as id`;
  if (!job) throw new Error(`graphile_worker.add_job returned no job for ${task}`);
  const deadline = performance.now() + taskJobMsMax;
  while (performance.now() < deadline) {
    const [row] = await drill.sql<{ attempts: number; maxAttempts: number; lastError: string | null }[]>`
      select attempts, max_attempts as "maxAttempts", last_error as "lastError"
      from graphile_worker.jobs where id = ${job.id}::bigint`;
    if (row === undefined) return;
    if (row.lastError !== null && row.attempts >= row.maxAttempts)
      throw new Error(`task ${task} failed in the service's worker: ${row.lastError}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`task ${task} did not finish in the service's worker within ${taskJobMsMax} ms`);
}

/** The service's GET /metrics, as text. */
export async function scrapeMetrics(service: ServiceProcess): Promise<string> {
  const response = await fetch(`${service.url}/metrics`, { signal: AbortSignal.timeout(metricsTimeoutMs) });
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return response.text();
}

/**
 * The sum of the samples of `name` whose labels include `labels` (a series not exported yet
 * counts as 0, as Prometheus' `increase` and `> 0` see it).
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = new Map(
      [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((label) => [
        label[1],
        label[2],
      ]),
    );
    if (Object.entries(labels).every(([key, wanted]) => found.get(key) === wanted)) sum += Number(match[3]);
  }
  return sum;
}

/**
 * The `expr` of an alert in ops/prometheus/alerts.yml, whitespace collapsed: the drill checks the
 * alert is still built on the metric it watches, so a changed alert cannot pass unnoticed.
 */
export function alertExpression(alert: string): string {
  const rules = readFileSync(join(repositoryRoot, 'ops', 'prometheus', 'alerts.yml'), 'utf8');
  const start = rules.indexOf(`- alert: ${alert}\n`);
  if (start < 0) throw new Error(`ops/prometheus/alerts.yml has no alert ${alert}`);
  const block = rules.slice(start).split(/\n\s*- alert: /)[0] ?? '';
  const expr = /\n\s+expr:\s*\|?\s*\n?([\s\S]*?)\n\s+for:/.exec(block)?.[1];
  if (expr === undefined) throw new Error(`alert ${alert} has no expr`);
  return expr.replace(/\s+/g, ' ').trim();
}

export function idempotencyKey(context: DrillContext): string {
  return `${context.drill}-${randomUUID()}`;
}
