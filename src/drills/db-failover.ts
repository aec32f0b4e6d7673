import { join } from 'node:path';
import { sealTask } from '../audit/tasks.ts';
import { signatureHeader, signatureHeaderValue } from '../deposits/signature.ts';
import { postJournal } from '../ledger/service.ts';
import { rateLimitMax } from '../platform/config.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { enqueueJob } from '../platform/jobs.ts';
import { reconcileTaskOf, reconciliationWorker } from '../reconciliation/tasks.ts';
import { stroopsPerUnit } from '../stellar/units.ts';
import { deliverTask } from '../webhooks/events.ts';
import { type Drill, type DrillContext, messageOf, type ServiceProcess } from './harness.ts';
import { type MerchantReceiver, startMerchantReceiver } from './merchant-receiver.ts';
import { findPostgresBinaries, type PostgresPair, startPostgresPair } from './postgres-pair.ts';
import { api, cliOk, issueToken, metricValue, openAccount, openSql, scrapeMetrics } from './support.ts';
import { TransferLoad } from './transfer-load.ts';

const database = 'settledesk';
const accountsCount = 4;
const fundingMinor = 1_000n * stroopsPerUnit;
/**
 * Bounds of the load: a few clients, a capped number of requests, each with a timeout. A client
 * retries a failed key every 100 ms (sooner than the 503's Retry-After, so that the first success
 * after the kill is measured to a tenth of a second); 30 tries outlast the outage (about 1 s with
 * the runbook's cells run at once), so the keys that answered 503 are retried until they succeed.
 */
const load = { clients: 8, requestsMax: 6_000, requestTimeoutMs: 5_000, triesPerKeyMax: 30 };
/**
 * `SHUTDOWN_TIMEOUT_MS` of the service: after the failover it must still stop within it. Tighter
 * than the default 8 s, so a pool close that waits out a dead connection (src/platform/runtime.ts)
 * still shows. Measured stops: api 151–401 ms and database 112–1001 ms on a quiet machine, but
 * api 2,012 ms in one full `npm test` run on the 2-core machine under load (draining the worker's
 * running jobs, which now include audit checkpoints and more detectors), which overran 3 s.
 */
const shutdownTimeoutMs = 5_000;
/** The worker polls this often; a job enqueued after the failover is fetched within it. */
const workerPollIntervalMs = 500;
const jobsAfterFailoverMsMax = 30_000;
const acknowledgedBeforeKillMin = 150;
const acknowledgedAfterRecoveryMin = 100;
const loadPhaseMsMax = 30_000;
const detectionMsMax = 20_000;
const recoveryMsMax = 30_000;
/** Acknowledged keys replayed through the API after the failover; the rest are checked in SQL. */
const replaysMax = 20;
/** The deposit provider whose signed webhook credits a deposit after the failover. */
const provider = 'failoverramp';
const providerSecret = 'db-failover-drill-provider-secret';
const depositAmount = '2.5';
const deliveryWaitMsMax = 30_000;

/**
 * docs/runbooks/db-failover.md against a real primary and synchronous streaming replica:
 * `settledesk serve` with its job worker on the multi-host URL under transfer load,
 * the primary killed with SIGKILL, detection through readiness, `dependency_up` and the runbook's
 * checks, the replica promoted by the runbook's cells, and then: the same service process writes
 * to the new primary, its job worker runs an audit seal and a detector there, every acknowledged
 * transfer is there exactly once, the ledger is balanced,
 * no request answered 500 meanwhile (503 with Retry-After only, and a retried key is never held
 * by its failed try), and the process still stops within its shutdown timeout.
 */
export const dbFailoverDrill: Drill = {
  name: 'db-failover',
  runbook: 'db-failover.md',
  description:
    'kill the PostgreSQL primary under transfer load, promote the synchronous replica with the runbook; ' +
    'the service and its job worker reconnect without a restart and no acknowledged transfer is lost',
  run: async (context) => {
    const binaries = await context.step('locate the system PostgreSQL binaries', async () => {
      const found = await findPostgresBinaries();
      context.note(`using ${found.dir}`);
      return found;
    });
    const pair = await context.step('start a primary and a synchronous streaming replica', async () => {
      const started = await startPostgresPair({ dir: join(context.dir, 'pg'), binaries, database });
      context.defer('stop PostgreSQL', () => started.stop());
      context.note(
        `primary on 127.0.0.1:${started.primary.port}, replica on 127.0.0.1:${started.replica.port}`,
      );
      return started;
    });
    const dataDir = join(context.dir, 'data');
    const serviceEnv = {
      DATABASE_URL: pair.multiHostUrl(database),
      SETTLEDESK_DATA_DIR: dataDir,
      SANDBOX_PORT: '0',
      [`DEPOSIT_WEBHOOK_SECRET_${provider.toUpperCase()}`]: providerSecret,
      // The drill's merchant endpoint is a plain-HTTP receiver on 127.0.0.1, which only the
      // allow-list lets an endpoint reach.
      MERCHANT_WEBHOOK_ALLOW_HTTP: 'true',
      MERCHANT_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
      WORKER_POLL: String(workerPollIntervalMs),
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
      // The load is one caller sending as fast as 8 clients can: a failover drill, not a limit's.
      RATE_LIMIT_CALLER_MAX: String(rateLimitMax),
    };
    await context.step('migrate settledesk onto the primary', async () => {
      const result = await context.cli(['--json', 'migrate'], {
        ...serviceEnv,
        DATABASE_URL: pair.primary.url(database),
      });
      if (result.code !== 0) throw context.fail(`settledesk migrate exited ${result.code}: ${result.stderr}`);
    });
    const service = await context.step(
      'start settledesk serve on the multi-host URL, with its job worker',
      () => context.startService(serviceEnv),
    );
    const tokens = await context.step(
      'issue a service token for the load and an operator token for the cells',
      async () => ({
        service: (await issueToken(context, serviceEnv, 'drill-load', 'service')).token,
        operator: (await issueToken(context, serviceEnv, 'drill-operator', 'operator')).token,
        admin: (await issueToken(context, serviceEnv, 'drill-admin', 'admin')).token,
      }),
    );
    Object.assign(context.env, {
      DATABASE_URL: pair.multiHostUrl(database),
      REPLICA_DATABASE_URL: pair.replica.url('postgres'),
      SETTLEDESK_URL: service.url,
      SETTLEDESK_TOKEN: tokens.operator,
      SETTLEDESK_DATA_DIR: dataDir,
      LOG_FILE: service.logFile,
      LOG_LEVEL: undefined,
    });
    const accounts = await context.step('open and fund customer accounts', () =>
      openFundedAccounts(context, service, tokens.service, pair),
    );
    const deposit = await context.step(
      `a merchant endpoint for deposit.credited, provider ${provider} and a deposit reference it quoted`,
      () => prepareDeposit(context, service, serviceEnv, tokens),
    );
    await context.step('the service pool skips a standby listed first in the URL', () =>
      standbyFirst(context, pair),
    );
    await context.step('runbook: the primary streams to a synchronous standby', () =>
      context.cells(['check-service-ready', 'check-primary', 'check-replication', 'check-replica']),
    );

    const transfers = new TransferLoad({
      url: service.url,
      token: tokens.service,
      accounts,
      amount: '0.0000001',
      ...load,
    });
    context.defer('stop the transfer load', () => transfers.stop());
    await context.step(
      `transfer load: ${load.clients} clients until ${acknowledgedBeforeKillMin} acknowledged`,
      async () => {
        transfers.start();
        await context.waitFor(
          `${acknowledgedBeforeKillMin} acknowledged transfers`,
          async () => (transfers.acknowledged().length >= acknowledgedBeforeKillMin ? true : undefined),
          loadPhaseMsMax,
        );
      },
    );
    const killedAt = await context.step(
      'kill the primary (SIGKILL to the postmaster and every backend)',
      async () => {
        pair.primary.kill();
        const at = performance.now();
        await context.waitFor(
          'the primary to be gone',
          async () => (pair.primary.alive() ? undefined : true),
          5_000,
        );
        const before = transfers.acknowledged().filter((attempt) => attempt.endedAt <= at).length;
        context.note(`${before} transfers acknowledged before the kill`);
        return at;
      },
    );
    const acknowledgedBeforeKill = transfers.acknowledged().filter((attempt) => attempt.endedAt <= killedAt);

    await context.step('detection: readiness and dependency_up report PostgreSQL down', async () => {
      const detail = await context.waitFor(
        'readiness to report postgresql down',
        () => readinessDown(service),
        detectionMsMax,
      );
      context.note(`readiness: postgresql down: ${detail}`);
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      if (!/^dependency_up\{dependency="postgresql"\} 0$/m.test(metrics))
        throw context.fail('dependency_up{dependency="postgresql"} is not 0 while the primary is down');
    });
    await context.step('runbook: the checks report the outage', async () => {
      await context.cellReports('check-service-ready', 'the API is not ready');
      await context.cellReports('check-primary', 'no host accepts writes');
    });
    await context.step('runbook: promote the replica', async () => {
      await context.cells(['check-replica']);
      await context.cells(['promote-replica'], { yes: true });
      await context.expectAfter('promote-replica', 'the replica is still in recovery', () =>
        onReplica(pair, async (sql) => {
          const [row] = await sql<{ inRecovery: boolean }[]>`select pg_is_in_recovery() as "inRecovery"`;
          if (row?.inRecovery !== false) throw new Error('pg_is_in_recovery() is still true');
        }),
      );
    });
    await context.step('runbook: stop waiting for the lost synchronous standby', async () => {
      await context.cells(['stop-waiting-for-standby'], { yes: true });
      await context.expectAfter('stop-waiting-for-standby', 'the new primary still waits for a standby', () =>
        onReplica(pair, async (sql) => {
          const [row] = await sql<
            { names: string }[]
          >`select current_setting('synchronous_standby_names') as names`;
          if (row?.names !== '') throw new Error(`synchronous_standby_names is '${row?.names}'`);
        }),
      );
      await context.cells(['check-primary']);
    });
    const writableAt = await context.step(
      'when the new primary stopped waiting for the lost standby (its configuration reload)',
      () => reloadedAt(pair),
    );

    // The cells did their job: from here on a failure is the service's, not the runbook's.
    const firstSuccess = await context.step(
      'recovery: the same service process writes to the new primary',
      async () => {
        const first = await context
          .waitFor(
            'a transfer started after the kill to be acknowledged',
            async () =>
              transfers.attempts.find(
                (attempt) => attempt.startedAt > killedAt && attempt.status === 201 && !attempt.replayed,
              ),
            recoveryMsMax,
          )
          .catch((error: unknown) => {
            throw context.fail(
              `the promoted replica accepts writes but the service did not write to it (src/platform/db/multi-host.ts): ${messageOf(error)}`,
            );
          });
        if (!service.alive())
          throw context.fail(`settledesk serve (pid ${service.pid}) is no longer running`);
        return first;
      },
    );
    context.figure(
      'firstSuccessAfterKillMs',
      Math.round(firstSuccess.endedAt - killedAt),
      `primary death to the first acknowledged transfer on the new primary: ${Math.round(firstSuccess.endedAt - killedAt)} ms`,
    );
    // The figure above is mostly the runbook's steps; this one is the service's own part.
    const afterWritableMs = Math.round(performance.timeOrigin + firstSuccess.endedAt - writableAt);
    context.figure(
      'firstSuccessAfterWritableMs',
      afterWritableMs,
      `new primary accepting commits (stop-waiting-for-standby reloaded it) to the first acknowledged transfer: ${afterWritableMs} ms`,
    );
    await context.step(
      `transfer load on the new primary until ${acknowledgedAfterRecoveryMin} more are acknowledged`,
      async () => {
        const target = transfers.acknowledged().length + acknowledgedAfterRecoveryMin;
        await context.waitFor(
          `${acknowledgedAfterRecoveryMin} more acknowledged transfers`,
          async () => (transfers.acknowledged().length >= target ? true : undefined),
          loadPhaseMsMax,
        );
        await transfers.stop();
      },
    );
    await context.step('runbook: the service is ready again, with the same pid', async () => {
      await context.cells(['check-service-ready']);
      if (!service.alive())
        throw context.fail(`settledesk serve (pid ${service.pid}) did not survive the failover`);
      context.note(`settledesk serve pid ${service.pid} served before and after the failover`);
    });
    await context.step('the same job worker runs a detector and an audit seal on the new primary', () =>
      jobsAfterFailover(context, service, pair),
    );
    await context.step(
      'a deposit credited on the new primary reaches the merchant once, delivered by the same process',
      () => depositAfterFailover(context, service, pair, deposit, writableAt),
    );
    await context.step('money: every acknowledged transfer is on the new primary, once', () =>
      context.expectAfter('promote-replica', 'acknowledged transfers are missing after the promotion', () =>
        checkAcknowledged(context, pair, service, tokens.service, transfers, killedAt),
      ),
    );
    await context.step(
      'runbook: the ledger sums to zero; money in the drill accounts is intact',
      async () => {
        await context.cells(['check-ledger', 'check-in-flight-keys']);
        await checkBalances(context, pair, accounts);
      },
    );
    const attempts = transfers.attempts;
    const counts = transfers.countsByStatus();
    context.figure('requests', attempts.length, `${attempts.length} requests in all`);
    context.figure(
      'acknowledgedBeforeKill',
      acknowledgedBeforeKill.length,
      `${acknowledgedBeforeKill.length} transfers acknowledged before the kill`,
    );
    context.figure(
      'acknowledged',
      transfers.acknowledged().length,
      `${transfers.acknowledged().length} transfers acknowledged in all`,
    );
    context.note(
      `answers by status: ${[...counts]
        .sort(([a], [b]) => a - b)
        .map(([status, count]) => `${status === 0 ? 'none' : status} ×${count}`)
        .join(', ')}`,
    );
    const unavailable = attempts.filter((attempt) => attempt.status === 503);
    context.figure('status503', unavailable.length, `${unavailable.length} requests answered 503`);
    context.figure(
      'status500',
      counts.get(500) ?? 0,
      `${counts.get(500) ?? 0} requests answered 500 (must be 0)`,
    );
    context.figure(
      'unanswered',
      counts.get(0) ?? 0,
      `${counts.get(0) ?? 0} requests had no answer within ${load.requestTimeoutMs} ms`,
    );
    const held = transfers.heldAfterFailure();
    context.figure(
      'heldAfterFailure',
      held.length,
      `${held.length} retries answered 409 in-flight because a failed try before them kept the key`,
    );
    const stopped = await context.step(
      `settledesk serve stops within its shutdown timeout (${shutdownTimeoutMs} ms) after the failover`,
      async () => {
        const result = await service.stop();
        context.note(`stopped: ${stoppedParts(service.logTail()) || '(no part logged)'}`);
        const how = result.killed
          ? 'was killed'
          : `exited with code ${result.code} (signal ${result.signal})`;
        if (result.killed || result.code !== 0 || (result.durationMs ?? 0) > shutdownTimeoutMs)
          throw context.fail(
            `settledesk serve (pid ${service.pid}) ${how} ${result.durationMs ?? '?'} ms after SIGTERM; ` +
              `it must exit 0 within SHUTDOWN_TIMEOUT_MS (${shutdownTimeoutMs} ms)`,
          );
        return result;
      },
    );
    context.figure('stopMs', stopped.durationMs ?? -1, `SIGTERM to exit: ${stopped.durationMs} ms`);
    context.figure('shutdownTimeoutMs', shutdownTimeoutMs, `SHUTDOWN_TIMEOUT_MS: ${shutdownTimeoutMs} ms`);
    await context.step('no request answered 500: every 5xx is a 503 with Retry-After', async () => {
      const failed = attempts.filter(
        (attempt) => attempt.status >= 500 && (attempt.status !== 503 || attempt.retryAfter === undefined),
      );
      if (failed.length > 0)
        throw context.fail(
          `${failed.length} requests answered a 5xx other than 503 with Retry-After, e.g. ` +
            `${failed[0]?.status} ${failed[0]?.problemType} (see "unhandled error" in ${service.logFile})`,
        );
      if (held.length > 0)
        throw context.fail(
          `${held.length} retries answered 409 after a 5xx (key ${held[0]?.key}): the failed request did not release its Idempotency-Key`,
        );
    });
  },
};

/**
 * Jobs enqueued on the promoted primary (as cron would each minute) must be run by the worker of
 * the serve process that lived through the failover: its own worker_runs_total counts them, and
 * the audit rows written after the promotion (transfers) are sealed on the new primary.
 */
async function jobsAfterFailover(
  context: DrillContext,
  service: ServiceProcess,
  pair: PostgresPair,
): Promise<void> {
  const runs = async (worker: string) =>
    metricValue(await scrapeMetrics(service), 'worker_runs_total', { worker, result: 'success' });
  const before = { seal: await runs(sealTask), detector: await runs(reconciliationWorker) };
  const sql = openSql(pair.multiHostUrl(database));
  try {
    // Audit rows up to here, the transfers on the new primary among them, must be sealed by the job.
    const [last] = await sql<{ id: bigint }[]>`select coalesce(max(id), 0)::int8 as id from audit_log`;
    const lastAuditId = last?.id ?? 0n;
    await withTransaction(sql, async (tx) => {
      await enqueueJob(tx, sealTask, {}, { jobKey: 'drill-seal-after-failover' });
      await enqueueJob(
        tx,
        reconcileTaskOf('ledger_balance'),
        {},
        { jobKey: 'drill-detector-after-failover' },
      );
    });
    const ran = await context
      .waitFor(
        'the audit seal and the ledger_balance detector to succeed in the serve process',
        async () => {
          const after = { seal: await runs(sealTask), detector: await runs(reconciliationWorker) };
          return after.seal > before.seal && after.detector > before.detector ? after : undefined;
        },
        jobsAfterFailoverMsMax,
      )
      .catch((error: unknown) => {
        throw context.fail(
          `the job worker did not run jobs on the new primary (src/platform/jobs.ts): ${messageOf(error)}`,
        );
      });
    const [audit] = await sql<{ unsealed: number }[]>`
      select count(*)::int as unsealed from audit_log where id <= ${lastAuditId}::bigint and hash is null`;
    if (audit?.unsealed !== 0)
      throw context.fail(`${audit?.unsealed} audit rows written before the seal job are still unsealed`);
    context.figure(
      'sealsAfterFailover',
      ran.seal - before.seal,
      `serve (pid ${service.pid}) ran ${ran.seal - before.seal} audit seals on the new primary`,
    );
    context.figure(
      'detectorRunsAfterFailover',
      ran.detector - before.detector,
      `serve (pid ${service.pid}) ran ${ran.detector - before.detector} detector runs on the new primary`,
    );
  } finally {
    await sql.end();
  }
}

type PreparedDeposit = { receiver: MerchantReceiver; accountId: string; reference: string };

/**
 * Before the kill, so that only the event itself happens after the failover: a verifying merchant
 * receiver registered for deposit.credited, the provider, and a reference it quoted a customer
 * (an account of its own, so the transfer accounts keep exactly what they were funded).
 */
async function prepareDeposit(
  context: DrillContext,
  service: ServiceProcess,
  serviceEnv: Record<string, string>,
  tokens: { service: string; admin: string },
): Promise<PreparedDeposit> {
  const receiver = await startMerchantReceiver();
  context.defer('stop the merchant receiver', () => receiver.close());
  const endpoint = await api(service, tokens.admin, 'POST', '/v1/webhook-endpoints', {
    url: receiver.url,
    eventTypes: ['deposit.credited'],
    ownerRef: null,
  });
  if (endpoint.status !== 201 || typeof endpoint.body.secret !== 'string')
    throw context.fail(
      `POST /v1/webhook-endpoints answered ${endpoint.status} ${JSON.stringify(endpoint.body)}`,
    );
  receiver.useSecret(endpoint.body.secret);
  await cliOk(context, serviceEnv, ['providers', 'add', provider, '--as', 'drill-operator']);
  const accountId = await openAccount(context, service, tokens.service, 'drill-depositor');
  const intent = await api(service, tokens.service, 'POST', '/v1/deposits/intents', { accountId, provider });
  if (intent.status !== 201 || typeof intent.body.reference !== 'string')
    throw context.fail(`POST /v1/deposits/intents answered ${intent.status} ${JSON.stringify(intent.body)}`);
  context.note(`endpoint ${endpoint.body.id} at ${receiver.url}; reference ${intent.body.reference}`);
  return { receiver, accountId, reference: intent.body.reference };
}

/**
 * The provider's signed webhook credits the deposit on the new primary; the merchant must receive
 * its deposit.credited event once, with a valid signature, sent by the worker of the serve process
 * that lived through the failover: its worker_runs_total counts the delivery task, and the
 * delivery's one attempt is stored after the new primary began accepting commits.
 */
async function depositAfterFailover(
  context: DrillContext,
  service: ServiceProcess,
  pair: PostgresPair,
  deposit: PreparedDeposit,
  writableAt: number,
): Promise<void> {
  const deliveries = async () =>
    metricValue(await scrapeMetrics(service), 'worker_runs_total', {
      worker: deliverTask,
      result: 'success',
    });
  const before = await deliveries();
  const text = JSON.stringify({
    reference: deposit.reference,
    accountId: deposit.accountId,
    asset: 'XLM',
    amount: depositAmount,
  });
  const signature = signatureHeaderValue(providerSecret, Math.floor(Date.now() / 1_000), text);
  const response = await fetch(`${service.url}/v1/webhooks/deposits/${provider}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [signatureHeader]: signature },
    body: text,
    signal: AbortSignal.timeout(load.requestTimeoutMs),
  });
  const answer = (await response.json()) as { outcome?: string; depositId?: string };
  if (response.status !== 201 || answer.outcome !== 'credited')
    throw context.fail(
      `the deposit webhook answered ${response.status} ${JSON.stringify(answer)}, not 201 credited`,
    );
  const matches = () =>
    deposit.receiver.verified.filter(
      (event) => event.type === 'deposit.credited' && event.data.reference === deposit.reference,
    );
  const sql = openSql(pair.replica.url(database));
  try {
    const attempts = await context
      .waitFor(
        'the merchant to receive deposit.credited and the delivery to be stored as delivered',
        async () => {
          if (matches().length === 0) return undefined;
          const rows = await sql<
            { status: string; attempt: number; statusCode: number | null; at: number }[]
          >`
            select d.status, a.attempt, a.status_code as "statusCode",
              (extract(epoch from a.attempted_at) * 1000)::float8 as at
            from merchant_webhook_events e
            join merchant_webhook_deliveries d on d.event_id = e.id
            join merchant_webhook_attempts a on a.delivery_id = d.id
            where e.body::jsonb -> 'data' ->> 'reference' = ${deposit.reference}::text`;
          return rows.some((row) => row.status === 'delivered') ? rows : undefined;
        },
        deliveryWaitMsMax,
      )
      .catch((error: unknown) => {
        throw context.fail(
          `the merchant webhook was not delivered after the failover (src/webhooks/tasks.ts): ${messageOf(error)}`,
        );
      });
    const runs = (await deliveries()) - before;
    const received = matches();
    if (received.length !== 1 || attempts.length !== 1)
      throw context.fail(
        `the merchant received the event ${received.length} times in ${attempts.length} attempts; once is right`,
      );
    if (attempts[0]!.statusCode !== 204 || attempts[0]!.at < writableAt)
      throw context.fail(
        `the delivery attempt answered ${attempts[0]!.statusCode} at ${new Date(attempts[0]!.at).toISOString()}, ` +
          `not 204 after the new primary accepted commits (${new Date(writableAt).toISOString()})`,
      );
    if (runs < 1)
      throw context.fail(
        `worker_runs_total{worker="${deliverTask}"} of serve (pid ${service.pid}) did not grow`,
      );
    context.figure(
      'webhookDeliveriesAfterFailover',
      received.length,
      `serve (pid ${service.pid}) delivered deposit.credited ${received.length} time(s) after the failover, signature verified`,
    );
    context.figure(
      'webhookReceiverRefused',
      deposit.receiver.refused,
      `${deposit.receiver.refused} requests to the merchant receiver failed signature verification (must be 0)`,
    );
  } finally {
    await sql.end();
  }
}

/** `api 2 ms, stellar 4 ms, …` from the `stopped part` lines of serve's log (src/cli/serve.ts). */
function stoppedParts(log: string): string {
  const parts: string[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"stopped part"')) continue;
    const { part, durationMs } = JSON.parse(line) as { part?: string; durationMs?: number };
    parts.push(`${part} ${durationMs} ms`);
  }
  return parts.join(', ');
}

/**
 * When the promoted replica reloaded its configuration (epoch ms): from then on commits no longer
 * wait for the lost synchronous standby. The drill runs on the same machine, so the clocks agree.
 */
async function reloadedAt(pair: PostgresPair): Promise<number> {
  let at = 0;
  await onReplica(pair, async (sql) => {
    const [row] = await sql<{ ms: number }[]>`
      select (extract(epoch from pg_conf_load_time()) * 1000)::float8 as ms`;
    at = row?.ms ?? 0;
  });
  return at;
}

async function onReplica(pair: PostgresPair, work: (sql: Sql) => Promise<void>): Promise<void> {
  const sql = openSql(pair.replica.url(database));
  try {
    await work(sql);
  } finally {
    await sql.end();
  }
}

/** Accounts through the API; their money straight from the `fees` system account, as a deposit would. */
async function openFundedAccounts(
  context: DrillContext,
  service: ServiceProcess,
  token: string,
  pair: PostgresPair,
): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < accountsCount; index += 1) {
    const response = await fetch(`${service.url}/v1/accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'customer', asset: 'XLM', ownerRef: `drill-${index}` }),
    });
    if (response.status !== 201) throw context.fail(`POST /v1/accounts answered ${response.status}`);
    ids.push(((await response.json()) as { id: string }).id);
  }
  const sql = openSql(pair.primary.url(database));
  try {
    const [fees] = await sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = 'XLM'`;
    if (!fees) throw context.fail('no XLM fees account after migration');
    await withTransaction(sql, (tx) =>
      postJournal(tx, {
        kind: 'drill_funding',
        entries: [
          { accountId: fees.id, amountMinor: -fundingMinor * BigInt(ids.length) },
          ...ids.map((accountId) => ({ accountId, amountMinor: fundingMinor })),
        ],
      }),
    );
  } finally {
    await sql.end();
  }
  return ids;
}

/**
 * The service's pool (src/platform/db/connect.ts) with the replica listed first must still land on
 * the primary: `target_session_attrs=read-write` has to refuse a hot standby.
 */
async function standbyFirst(context: DrillContext, pair: PostgresPair): Promise<void> {
  const url = `postgres://postgres:${encodeURIComponent(pair.password)}@127.0.0.1:${pair.replica.port},127.0.0.1:${pair.primary.port}/${database}?target_session_attrs=read-write`;
  const sql = openSql(url);
  try {
    const [row] = await sql<{ inRecovery: boolean; port: number }[]>`
      select pg_is_in_recovery() as "inRecovery", inet_server_port() as port`;
    if (row?.inRecovery !== false)
      throw context.fail(`with the standby listed first the pool connected to port ${row?.port}, a standby`);
  } finally {
    await sql.end();
  }
}

type Readiness = { status: string; checks: Record<string, { status: string; detail?: string }> };

/** The PostgreSQL check's detail once readiness answers 503 with it down. */
async function readinessDown(service: ServiceProcess): Promise<string | undefined> {
  const response = await fetch(`${service.url}/health/ready`, { signal: AbortSignal.timeout(5_000) });
  const body = (await response.json()) as Readiness;
  const check = body.checks.postgresql;
  return response.status === 503 && check?.status === 'down' ? (check.detail ?? '(no detail)') : undefined;
}

/**
 * Straight on the promoted replica, not through the service: every acknowledged transfer's
 * journal transaction exists with its key as reference, its key is stored as completed, and no
 * key was posted twice. A sample of keys is also replayed through the API, which must answer
 * with the stored transfer.
 */
async function checkAcknowledged(
  context: DrillContext,
  pair: PostgresPair,
  service: ServiceProcess,
  token: string,
  transfers: TransferLoad,
  killedAt: number,
): Promise<void> {
  const refused = transfers.unexpected();
  if (refused.length > 0)
    throw new Error(
      `${refused.length} requests were refused (e.g. ${refused[0]?.status} ${refused[0]?.problemType}): accounts or keys missing after the failover?`,
    );
  const acknowledged = transfers.acknowledged();
  const ids = acknowledged.map((attempt) => attempt.transferId ?? '');
  if (ids.includes('')) throw new Error('an acknowledged answer carried no transfer id');
  const sql = openSql(pair.replica.url(database));
  try {
    const found = await sql<{ id: string; reference: string | null }[]>`
      select id, reference from journal_transactions where id = any(${ids}::uuid[])`;
    const references = new Map(found.map((row) => [row.id, row.reference]));
    const missing = acknowledged.filter((attempt) => references.get(attempt.transferId!) !== attempt.key);
    context.figure('acknowledgedLost', missing.length, `${missing.length} acknowledged transfers lost`);
    if (missing.length > 0)
      throw new Error(
        `${missing.length} of ${acknowledged.length} acknowledged transfers are not on the new primary, e.g. ${missing[0]?.transferId} (key ${missing[0]?.key})`,
      );
    const keys = acknowledged.map((attempt) => attempt.key);
    const [completed] = await sql<{ count: number }[]>`
      select count(*)::int as count from idempotency_keys
      where caller = 'drill-load' and key = any(${keys}::text[]) and state = 'completed'`;
    if (completed?.count !== keys.length)
      throw new Error(
        `${keys.length - (completed?.count ?? 0)} acknowledged keys are not stored as completed`,
      );
    const doubled = await sql<{ reference: string }[]>`
      select reference from journal_transactions
      where kind = 'transfer' and reference like 'drill-%' group by reference having count(*) > 1 limit 5`;
    if (doubled.length > 0)
      throw new Error(`keys posted twice: ${doubled.map((row) => row.reference).join(', ')}`);
    const [posted] = await sql<{ count: number }[]>`
      select count(*)::int as count from journal_transactions where kind = 'transfer' and reference like 'drill-%'`;
    const unanswered = (posted?.count ?? 0) - acknowledged.length;
    context.note(
      `${acknowledged.length} acknowledged transfers all found by journal id and key, none posted twice; ` +
        `${unanswered} more committed whose answer never reached their client`,
    );
  } finally {
    await sql.end();
  }
  // Keys stored on the old primary, replayed from the new one.
  const beforeKill = acknowledged.filter((attempt) => attempt.endedAt <= killedAt).slice(-replaysMax);
  for (const attempt of beforeKill) {
    const replay = await fetch(`${service.url}/v1/transfers`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'idempotency-key': attempt.key,
      },
      body: attempt.body,
    });
    const json = (await replay.json()) as { id?: string };
    if (
      replay.status !== 201 ||
      replay.headers.get('idempotent-replayed') !== 'true' ||
      json.id !== attempt.transferId
    )
      throw new Error(
        `replaying key ${attempt.key} answered ${replay.status} with ${json.id}, not the stored ${attempt.transferId}`,
      );
  }
  context.note(
    `the last ${beforeKill.length} keys acknowledged before the kill replay their stored transfer`,
  );
}

/** Transfers only move money between the drill's accounts: their total is what was funded. */
async function checkBalances(
  context: DrillContext,
  pair: PostgresPair,
  accounts: readonly string[],
): Promise<void> {
  const sql = openSql(pair.replica.url(database));
  try {
    const rows = await sql<{ id: string; balanceMinor: bigint; entriesMinor: bigint }[]>`
      select a.id, a.balance_minor as "balanceMinor", coalesce(sum(e.amount_minor), 0)::int8 as "entriesMinor"
      from accounts a left join entries e on e.account_id = a.id
      where a.id = any(${accounts}::uuid[]) group by a.id`;
    const total = rows.reduce((sum, row) => sum + row.balanceMinor, 0n);
    const drifted = rows.filter((row) => row.balanceMinor !== row.entriesMinor);
    if (
      rows.length !== accounts.length ||
      drifted.length > 0 ||
      total !== fundingMinor * BigInt(accounts.length)
    )
      throw context.fail(
        `drill accounts hold ${total} minor units (funded ${fundingMinor * BigInt(accounts.length)}); ` +
          `${drifted.length} balances differ from their entries`,
      );
  } finally {
    await sql.end();
  }
}
