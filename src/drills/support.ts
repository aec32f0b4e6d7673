import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAmount } from '../money/money.ts';
import type { Summary } from '../ops/triage.ts';
import { connect, withDatabase } from '../platform/db/connect.ts';
import { startEmbeddedPostgres } from '../platform/db/embedded.ts';
import type { Sql } from '../platform/db/types.ts';
import { createLogger } from '../platform/logging.ts';
import { repositoryRoot } from '../runbooks/cells.ts';
import { stellarDecimals } from '../stellar/units.ts';
import { assertTraversable, type DrillContext, type ServiceProcess } from './harness.ts';

/**
 * What every drill may need, whatever it breaks: a database of its own, SQL connections, the CLI
 * and its tokens, the service's API and /metrics, and the alerts the drill checks detection
 * against. harness.ts runs drills; this module holds what the drills do with what it runs; the
 * fixtures built on it are sandbox-service.ts (one `settledesk serve` on the sandbox) and
 * sandbox-settlement.ts (its Stellar paths).
 */

const requestTimeoutMs = 10_000;

export function openSql(url: string, poolMax = 2): Sql {
  return connect({ url, poolMax, logger: createLogger('silent'), applicationName: 'settledesk-drill' });
}

/** One connection for one piece of work, closed afterwards. */
export async function withSql(url: string, work: (sql: Sql) => Promise<unknown>): Promise<void> {
  const sql = openSql(url, 1);
  try {
    await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * A database only this drill uses: a fresh one on the server of DATABASE_URL when it is set (its
 * role must be allowed to create databases; the drills need a superuser anyway), otherwise an
 * embedded PostgreSQL in the drill folder. Dropped or stopped when the drill ends; `settledesk
 * serve` migrates it when it starts.
 */
export async function drillDatabase(context: DrillContext): Promise<string> {
  const serverUrl = process.env.DATABASE_URL;
  if (serverUrl !== undefined && serverUrl !== '') {
    const name = `settledesk_drill_${context.drill.replaceAll('-', '_')}_${randomBytes(4).toString('hex')}`;
    await withSql(serverUrl, (admin) => admin.unsafe(`create database "${name}"`));
    context.defer(`drop database ${name}`, () =>
      withSql(serverUrl, (admin) => admin.unsafe(`drop database if exists "${name}" with (force)`)),
    );
    context.note(`database ${name} on the server of DATABASE_URL`);
    return withDatabase(serverUrl, name);
  }
  // As root, the embedded cluster runs as the postgres user, who must be able to enter the folder.
  if (process.getuid?.() === 0) await assertTraversable(context.dir, 'PostgreSQL (run as the postgres user)');
  const embedded = await startEmbeddedPostgres({
    dataDir: join(context.dir, 'postgres'),
    logger: createLogger('warn', process.stderr),
    // A throw-away cluster: durability would only slow the drill down.
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
  });
  context.defer('stop the embedded PostgreSQL', () => embedded.stop());
  context.note(`embedded PostgreSQL on 127.0.0.1:${embedded.port}`);
  return embedded.url;
}

/** Runs the CLI and returns its stdout; a non-zero exit fails the current step. */
export async function cliOk(
  context: DrillContext,
  env: Record<string, string | undefined>,
  args: readonly string[],
): Promise<string> {
  const result = await context.cli(args, env);
  if (result.code !== 0)
    throw context.fail(`settledesk ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** `settledesk token issue` with `env`: signed with the key current in the database, for an hour. */
export async function issueToken(
  context: DrillContext,
  env: Record<string, string | undefined>,
  subject: string,
  role: string,
): Promise<{ token: string; kid: string }> {
  const stdout = await cliOk(context, env, [
    '--json',
    'token',
    'issue',
    '--sub',
    subject,
    '--role',
    role,
    '--ttl',
    '1h',
  ]);
  return JSON.parse(stdout) as { token: string; kid: string };
}

export type ApiAnswer<T> = { status: number; body: T; requestId: string };

/** A call to the service's API; answers the status, the parsed JSON body and the request id. */
export async function api<T = Record<string, unknown>>(
  service: ServiceProcess,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiAnswer<T>> {
  const response = await fetch(`${service.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: (text === '' ? {} : JSON.parse(text)) as T,
    requestId: response.headers.get('x-request-id') ?? '',
  };
}

/** A customer account in XLM through POST /v1/accounts; answers its id. */
export async function openAccount(
  context: DrillContext,
  service: ServiceProcess,
  token: string,
  ownerRef: string,
): Promise<string> {
  const created = await api(service, token, 'POST', '/v1/accounts', {
    type: 'customer',
    asset: 'XLM',
    ownerRef,
  });
  if (created.status !== 201) throw context.fail(`POST /v1/accounts answered ${created.status}`);
  return String(created.body.id);
}

/** Fails unless `answer` is the 503 `payments/read-only` refusal of a money movement. */
export function expectReadOnlyRefusal(request: string, answer: ApiAnswer<{ type?: string }>): void {
  if (answer.status !== 503 || !String(answer.body.type).endsWith('payments/read-only'))
    throw new Error(`${request} answered ${answer.status} ${JSON.stringify(answer.body)}`);
}

/**
 * `settledesk ledger check` passes with the cells' environment; with `triage`, so does
 * `settledesk triage ledger --check`, and it reports the ledger balanced.
 */
export async function checkLedgerBalanced(
  context: DrillContext,
  options: { triage?: boolean } = {},
): Promise<void> {
  await cliOk(context, context.env, ['ledger', 'check']);
  if (!options.triage) return;
  const ledger = JSON.parse(await cliOk(context, context.env, ['--json', 'triage', 'ledger', '--check'])) as {
    balanced: boolean;
  };
  if (!ledger.balanced) throw context.fail('settledesk triage ledger reports an imbalance');
}

export function idempotencyKey(context: DrillContext): string {
  return `${context.drill}-${randomUUID()}`;
}

/** An XLM amount as the API and Horizon write it, in stroops. */
export function xlmMinor(amount: string): bigint {
  const parsed = parseAmount(amount, { precision: stellarDecimals, allowZero: true });
  if (!parsed.ok) throw new Error(`not an XLM amount: ${amount}`);
  return parsed.minor;
}

/** The service's GET /metrics, as text. */
export async function scrapeMetrics(service: ServiceProcess): Promise<string> {
  const response = await fetch(`${service.url}/metrics`, { signal: AbortSignal.timeout(requestTimeoutMs) });
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

/** The text of an alert's rule in ops/prometheus/alerts.yml, from its `- alert:` line on. */
function alertRule(alert: string): string {
  const rules = readFileSync(join(repositoryRoot, 'ops', 'prometheus', 'alerts.yml'), 'utf8');
  const start = rules.indexOf(`- alert: ${alert}\n`);
  if (start < 0) throw new Error(`ops/prometheus/alerts.yml has no alert ${alert}`);
  return rules.slice(start);
}

/**
 * The `expr` of an alert in ops/prometheus/alerts.yml, whitespace collapsed: the drill checks the
 * alert is still built on the metric it watches, so a changed alert cannot pass unnoticed.
 */
export function alertExpression(alert: string): string {
  const block = alertRule(alert).split(/\n\s*- alert: /)[0] ?? '';
  const expr = /\n\s+expr:\s*\|?\s*\n?([\s\S]*?)\n\s+for:/.exec(block)?.[1];
  if (expr === undefined) throw new Error(`alert ${alert} has no expr`);
  return expr.replace(/\s+/g, ' ').trim();
}

/**
 * The number an alert compares `metric` with (`metric … > N`), so a drill checks the threshold
 * the alert really uses.
 */
export function alertThreshold(alert: string, metric: string): number {
  const rule = alertRule(alert);
  const expression = rule.slice(rule.indexOf('expr:'), rule.indexOf('for:'));
  const escaped = metric.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`${escaped}[^\\n]*?\\)*\\s*>\\s*(\\d+(?:\\.\\d+)?)`).exec(expression);
  if (!match) throw new Error(`alert ${alert} does not compare ${metric} with a threshold`);
  return Number(match[1]);
}

/** `settledesk --json triage summary`, what on-call runs first. */
export async function triageSummary(
  context: DrillContext,
  env: Record<string, string | undefined>,
): Promise<Summary> {
  return JSON.parse(await cliOk(context, env, ['--json', 'triage', 'summary'])) as Summary;
}
