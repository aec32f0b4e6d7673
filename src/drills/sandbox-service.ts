import { join } from 'node:path';
import { postJournal } from '../ledger/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import type { DrillContext, ServiceProcess } from './harness.ts';
import { api, drillDatabase, issueToken, openAccount, openSql } from './support.ts';

/**
 * What the drills on one `settledesk serve` share (built on support.ts): the service on a database
 * of its own with its job worker and its in-process sandbox network, tokens, accounts funded the
 * way db-failover funds them, and a scheduled task run now by the service's own worker.
 */

/** Sandbox ledgers close this often in a drill: a payout settles within a second or two. */
const ledgerCloseMs = 200;
const taskJobMsMax = 30_000;

export type SandboxService = {
  service: ServiceProcess;
  /** The service's configuration, as the runbook's cells also get it. */
  env: Record<string, string>;
  /** A superuser connection to the drill's database. */
  sql: Sql;
  databaseUrl: string;
  tokens: { service: string; operator: string; admin: string };
};

export type SandboxServiceOptions = {
  /**
   * Who the cells act as (SETTLEDESK_OPERATOR) and the operator token's subject, for a drill
   * whose runbook output names them; by default the token is `drill-oncall`'s, the cells `oncall-olga`.
   */
  operator?: string;
};

/**
 * `settledesk serve` (API, job worker, settlement engine, the sandbox in-process) on a database of
 * its own, with short timers, then a service, an operator and an admin token. The cells get the
 * same configuration, the operator token, the log file and the database URL.
 */
export async function startSandboxService(
  context: DrillContext,
  extraEnv: Record<string, string> = {},
  options: SandboxServiceOptions = {},
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
      issueToken(context, env, options.operator ?? 'drill-oncall', 'operator'),
      issueToken(context, env, 'admin-alice', 'admin'),
    ]);
    return { service: serviceToken.token, operator: operator.token, admin: admin.token };
  });
  Object.assign(context.env, env, {
    SETTLEDESK_URL: service.url,
    SETTLEDESK_TOKEN: tokens.operator,
    SETTLEDESK_OPERATOR: options.operator ?? 'oncall-olga',
    LOG_FILE: service.logFile,
    // The cells' own settledesk commands log to stderr at the default level, not the service's.
    LOG_LEVEL: undefined,
  });
  return { service, env, sql, databaseUrl, tokens };
}

/** A reconciliation finding as the triage routes answer it. */
export type Finding = { id: string; kind: string; subject: string; evidence: Record<string, unknown> };

export type Modes = { paymentsMode: string; payoutsFrozen: boolean };

/** The kill switches, as GET /internal/modes answers them to the operator. */
export async function controlModes(drill: SandboxService): Promise<Modes> {
  return (await api<Modes>(drill.service, drill.tokens.operator, 'GET', '/internal/modes')).body;
}

/** Fails unless the kill switches are as `expected` says; the error shows what they are. */
export async function expectModes(drill: SandboxService, expected: Partial<Modes>): Promise<void> {
  const modes = await controlModes(drill);
  if (Object.entries(expected).some(([key, value]) => modes[key as keyof Modes] !== value))
    throw new Error(`GET /internal/modes: ${JSON.stringify(modes)}`);
}

/** Fails unless exactly one incident snapshot under `incidentRef` holds `findingsCount` findings in `section`. */
export async function expectSnapshotWithFindings(
  drill: SandboxService,
  incidentRef: string,
  section: string,
  findingsCount: number,
): Promise<void> {
  const [row] = await drill.sql<{ count: number }[]>`
    select count(*)::int as count from incident_snapshots
    where incident_ref = ${incidentRef}::text
      and jsonb_array_length(content -> ${section}::text -> 'findings') = ${findingsCount}::int`;
  if (row?.count !== 1) throw new Error(`${row?.count ?? 0} snapshots with ${findingsCount} findings`);
}

/** Customer accounts through the API; their money straight from the `fees` system account. */
export async function openFundedCustomers(
  context: DrillContext,
  drill: SandboxService,
  fundingMinor: readonly bigint[],
): Promise<string[]> {
  const ids: string[] = [];
  for (const [index] of fundingMinor.entries())
    ids.push(await openAccount(context, drill.service, drill.tokens.service, `${context.drill}-${index}`));
  const [fees] = await drill.sql<{ id: string }[]>`
    select id from accounts where type = 'fees' and asset = 'XLM'`;
  if (!fees) throw context.fail('no XLM fees account after migration');
  const total = fundingMinor.reduce((sum, amount) => sum + amount, 0n);
  await withTransaction(drill.sql, (tx) =>
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
