import { createRequire } from 'node:module';
import { DepositWatcher } from './deposits/watcher.ts';
import {
  createDomains,
  type Domains,
  domainCrontab,
  domainRoutes,
  domainTasks,
  domainWorkerOf,
} from './domains.ts';
import { ensureSystemAccounts, selectAssets } from './ledger/data.ts';
import { exportBusinessHours } from './ops/business-hours.ts';
import { SettlementEngine } from './payouts/engine.ts';
import { startAccessSync } from './platform/auth/access.ts';
import { isApiKeyToken } from './platform/auth/api-keys.ts';
import type { Principal } from './platform/auth/roles.ts';
import { TokenRejected, VerifiedTokens } from './platform/auth/tokens.ts';
import { DomainError, OperatingError } from './platform/errors.ts';
import { heartbeatTask } from './platform/heartbeat.ts';
import { type App, createApp } from './platform/http/app.ts';
import type { Authenticator } from './platform/http/auth.ts';
import { RateLimitCounters } from './platform/http/rate-limit.ts';
import { enqueueJob, startWorker, type Worker } from './platform/jobs.ts';
import { type Stop, stopAll } from './platform/lifecycle.ts';
import { startLoopReporter } from './platform/loop-report.ts';
import { ownLoopsCheck } from './platform/loops.ts';
import { type Poller, startPoller } from './platform/poller.ts';
import { listenFailure } from './platform/ports.ts';
import type { Runtime } from './platform/runtime.ts';
import { ensureChannels, problemsOf } from './stellar/channels.ts';
import type { StellarEndpoints } from './stellar/endpoints.ts';
import { createSettlementChain } from './stellar/settlement-chain.ts';
import { loadWallet, type Wallet } from './stellar/wallet.ts';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/**
 * A bearer token is an API key (recognised by its `sdk_live_` prefix: services) or a JWT (people).
 * A JWT is accepted when it verifies against a usable key and its subject is not suspended.
 */
export function authenticator(runtime: Runtime): Authenticator {
  const verified = new VerifiedTokens();
  return async (token) => {
    if (isApiKeyToken(token)) return runtime.apiKeys.authenticate(token);
    let principal: Principal;
    try {
      principal = await verified.verify(runtime.keyring, token);
    } catch (error) {
      if (error instanceof TokenRejected) {
        throw new DomainError('auth/unauthenticated', 'the bearer token was refused');
      }
      throw error;
    }
    if (runtime.users.isSuspended(principal.subject)) {
      throw new DomainError('auth/unauthenticated', 'the bearer token was refused');
    }
    return principal;
  };
}

export async function buildApp(runtime: Runtime, domains: Domains = createDomains(runtime)): Promise<App> {
  return createApp({
    logger: runtime.logger,
    authenticator: authenticator(runtime),
    bodyBytesMax: runtime.config.requestBodyBytesMax,
    routes: domainRoutes(runtime, domains),
    version,
    rateLimit: {
      config: runtime.config.rateLimits,
      counters: new RateLimitCounters({
        redis: runtime.redis?.client,
        prefix: runtime.config.rateLimits.redisPrefix,
        logger: runtime.logger,
      }),
    },
  });
}

export async function startJobs(
  runtime: Runtime,
  domains?: Domains,
  stellar?: StellarEndpoints,
): Promise<Worker> {
  domains ??= createDomains(runtime, stellar);
  // Beside the manual review queue size that the settlement engine reports: its alert joins on it.
  exportBusinessHours(runtime.config.oncall);
  const wallet = stellar ? await loadWallet(runtime.config) : undefined;
  const settlement = stellar && wallet ? startSettlement(runtime, domains, stellar, wallet) : undefined;
  const watcher = stellar && wallet ? startDepositWatcher(runtime, stellar, wallet) : undefined;
  domains.settlement.loop = settlement;
  const stopPollers = () => Promise.all([settlement?.stop(), watcher?.stop()]).then(() => undefined);
  let worker: Worker | undefined;
  try {
    worker = await startWorker({
      connectionString: runtime.databaseUrl,
      tasks: domainTasks(runtime, domains),
      crontab: domainCrontab,
      workerOf: domainWorkerOf,
      concurrency: runtime.config.workerConcurrency,
      pollIntervalMs: runtime.config.workerPollIntervalMs,
      logger: runtime.logger,
    });
    // Beat once at start so readiness reports a live worker without waiting for the first cron tick.
    await enqueueJob(runtime.sql, heartbeatTask, {}, { jobKey: 'heartbeat-on-start' });
  } catch (error) {
    await stopAll([stopPollers, worker?.stop]);
    throw error;
  }
  const started = worker;
  return { ...started, stop: () => stopAll([stopPollers, started.stop]) };
}

/** Writes this process's loops into `worker_loops` for triage (src/platform/loop-report.ts). */
export function reportLoops(runtime: Runtime, role: string): Poller {
  return startLoopReporter({
    db: runtime.sql,
    role,
    reportIntervalMs: runtime.config.loops.reportIntervalMs,
    staleSecondsMin: runtime.config.loops.staleSecondsMin,
    logger: runtime.logger,
  });
}

/** The settlement engine on this process: wallet, channels (bootstrapped on the sandbox), loop. */
function startSettlement(
  runtime: Runtime,
  domains: Domains,
  stellar: StellarEndpoints,
  wallet: Wallet,
): Poller {
  const { config, logger } = runtime;
  const chain = createSettlementChain(stellar, logger);
  domains.settlement.chain = chain;
  // A worker-only process reports the engine's paths; beside the API they are checked already.
  if (!domains.stellarPathsChecked) {
    for (const check of chain.healthChecks()) runtime.health.register(check);
    domains.stellarPathsChecked = true;
  }
  const engine = new SettlementEngine(runtime.sql, chain, {
    hotWallet: wallet.hotWallet,
    channels: wallet.channels,
    networkPassphrase: stellar.networkPassphrase,
    batchSizeMax: config.payouts.batchSizeMax,
    windowSeconds: config.payouts.windowSeconds,
    windowLedgers: config.payouts.windowLedgers,
    feeCapStroops: config.payouts.feeCapStroops,
    resubmitAfterMs: config.payouts.resubmitAfterMs,
    manualReviewAfterMs: config.payouts.manualReviewAfterMs,
    logger,
  });
  const prepare = async () => {
    if (stellar.network === 'sandbox' && stellar.friendbotUrl !== undefined) {
      const assets = (await selectAssets(runtime.sql)).map((asset) => asset.code);
      const problems = problemsOf(await ensureChannels(stellar, wallet, assets));
      if (problems.length > 0)
        throw new OperatingError(`sandbox channels are not ready: ${problems.join('; ')}`);
    }
    await engine.registerChannels();
  };
  logger.info(
    { hotWallet: wallet.hotWallet.publicKey(), channels: wallet.channels.length, network: stellar.network },
    'settlement engine started',
  );
  return startPoller({
    name: 'settlement engine',
    worker: 'payout',
    round: async () => {
      const report = await engine.runRound();
      return report.built > 0 || report.resolved > 0;
    },
    pollMs: config.payouts.pollMs,
    logger,
    prepare,
  });
}

/** Follows payments into the hot wallet and credits them (see src/deposits/watcher.ts). */
function startDepositWatcher(runtime: Runtime, stellar: StellarEndpoints, wallet: Wallet): Poller {
  const watcher = new DepositWatcher(runtime.sql, {
    horizonUrls: stellar.horizonUrls,
    receivingAccount: wallet.hotWallet.publicKey(),
    logger: runtime.logger,
  });
  return startPoller({
    name: 'deposit watcher',
    worker: 'deposit_watcher',
    round: () => watcher.poll(),
    pollMs: runtime.config.deposits.watcherPollMs,
    logger: runtime.logger,
  });
}

export type Service = { app: App; url: string; stop(): Promise<void> };

/**
 * Starts the API (and, unless disabled, the job worker) on an open runtime. `stop` drains in
 * order: stop accepting and finish in-flight requests, let running jobs finish, stop syncing
 * access (keys, suspensions). The runtime (pool, embedded database) is closed by whoever opened it.
 */
export async function startService(
  runtime: Runtime,
  options: { worker: boolean; stellar?: StellarEndpoints },
): Promise<Service> {
  const { config, logger } = runtime;
  // What has started so far; a step that fails stops all of it before the error leaves here.
  let stopAccessSync: Stop | undefined;
  let app: App | undefined;
  let worker: Worker | undefined;
  let statusProbe: Poller | undefined;
  let reporter: Poller | undefined;
  // The two pollers together: each may wait out a round on a dead connection (roundDrainMsMax),
  // and one after the other could overrun a short SHUTDOWN_TIMEOUT_MS after a failover.
  const stopPollers = () => Promise.all([statusProbe?.stop(), reporter?.stop()]).then(() => undefined);
  const stop = () => stopAll([stopPollers, app?.close.bind(app), worker?.stop, stopAccessSync]);
  try {
    stopAccessSync = await startAccessSync(runtime.sql, runtime, config.accessReloadMs, logger);
    // Every asset has its system accounts before the first request (idempotent).
    await ensureSystemAccounts(runtime.sql);
    const domains = createDomains(runtime, options.stellar);
    // Reported, not critical: an API instance taken out of the load balancer because a detector
    // is wedged adds an outage to the incident (docs/operations.md).
    runtime.health.register(
      ownLoopsCheck({ critical: false, staleSecondsMin: config.loops.staleSecondsMin }),
    );
    app = await buildApp(runtime, domains);
    const url = await listen(app, config);
    worker = options.worker ? await startJobs(runtime, domains, options.stellar) : undefined;
    // Keeps the Stellar and readiness gauges current for Prometheus, and the summary's status fresh.
    statusProbe = startPoller({
      name: 'status probe',
      worker: 'status_probe',
      round: async () => {
        await domains.triage.refreshStatus();
        return false;
      },
      pollMs: config.statusProbeIntervalMs,
      logger,
    });
    reporter = reportLoops(runtime, 'api');
    return { app, url, stop };
  } catch (error) {
    await stop().catch((stopError: unknown) =>
      logger.error({ err: stopError }, 'could not stop what had started'),
    );
    throw error;
  }
}

async function listen(app: App, config: Runtime['config']): Promise<string> {
  try {
    return await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    throw listenFailure(error, {
      host: config.host,
      port: config.port,
      variable: 'PORT',
      hostVariable: 'HOST',
    });
  }
}
