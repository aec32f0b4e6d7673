import type { Command } from 'commander';
import { type Config, ConfigError, loadConfig } from '../platform/config.ts';
import { startDatabaseProbe } from '../platform/db/server-figures.ts';
import { OperatingError } from '../platform/errors.ts';
import { startMetricsListener } from '../platform/http/metrics-listener.ts';
import { type Stop, stopAll } from '../platform/lifecycle.ts';
import { createLogger, type Logger } from '../platform/logging.ts';
import { ownLoopsCheck } from '../platform/loops.ts';
import { assertPortsFree, type PortClaim, PortUnavailableError } from '../platform/ports.ts';
import { openRuntime } from '../platform/runtime.ts';
import { SandboxInUseError, SandboxPortInUseError } from '../sandbox/ownership.ts';
import { reportLoops, startJobs, startService } from '../server.ts';
import { configuredEndpoints, findStellar, openStellar } from '../stellar/connect.ts';
import { WalletConfigError } from '../stellar/wallet.ts';

/**
 * What a start has opened so far, stopped in the reverse order. `stopping` is set by the first
 * signal: a start checks it between its slow steps and stops early instead of finishing first.
 * Each part logs how long it took to stop, so a shutdown that overran its timeout names the part.
 */
class Opened {
  readonly #stops: Stop[] = [];
  readonly #logger: Logger;
  stopping = false;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  add(part: string, stop: Stop): void {
    this.#stops.unshift(async () => {
      const started = performance.now();
      await stop();
      this.#logger.info({ part, durationMs: Math.round(performance.now() - started) }, 'stopped part');
    });
  }

  stop(): Promise<void> {
    return stopAll(this.#stops.splice(0));
  }
}

/** After this, the process exits whatever is still open: a supervisor must never wait forever. */
function exitAfter(ms: number, logger: Logger, message: string): void {
  setTimeout(() => {
    logger.error(message);
    process.exit(1);
  }, ms).unref();
}

/**
 * An error nothing caught (a rejected promise nobody awaited, an exception thrown in a callback)
 * leaves the process in a state no code of ours chose, so it exits 1 at once for its supervisor to
 * start it again, after one `fatal` log line with the stack and where it came from (`origin`:
 * `unhandledRejection` or `uncaughtException`). Node would exit too, but with the stack on stderr
 * only, outside the log. One listener sees both: Node raises an unhandled rejection as an uncaught
 * exception when no 'unhandledRejection' listener is installed. Draining first is not attempted: the
 * API's clients retry, and a job cut short runs again (every job is idempotent).
 */
function exitOnUncaught(logger: Logger): (error: unknown, origin: string) => void {
  return (error, origin) => {
    logger.fatal({ err: error, origin }, 'uncaught error: exiting');
    process.exit(1);
  };
}

/**
 * Starts, then runs until SIGINT/SIGTERM, then stops what was opened within the configured
 * timeout. The handlers are installed before `start`, so a signal that arrives while starting
 * still stops what has started. A start that fails is reported at once as one line naming the
 * cause and the setting to change; what it had opened is then released within the same timeout
 * and the process exits 1. A second signal, or an overrun, exits at once: an operator pressing
 * Ctrl-C twice means it.
 */
async function runUntilSignal(
  config: Config,
  logger: Logger,
  start: (opened: Opened) => Promise<void>,
): Promise<void> {
  const opened = new Opened(logger);
  let signalled = () => {};
  const signal = new Promise<void>((resolve) => {
    signalled = resolve;
  });
  const onSignal = (name: NodeJS.Signals) => {
    if (opened.stopping) {
      logger.warn({ signal: name }, 'second signal: exiting without draining');
      process.exit(1);
    }
    opened.stopping = true;
    logger.info({ signal: name }, 'shutting down');
    exitAfter(config.shutdownTimeoutMs, logger, 'shutdown took too long: exiting');
    signalled();
  };
  const onUncaught = exitOnUncaught(logger);
  process.on('uncaughtException', onUncaught);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await start(opened);
    await signal;
  } catch (error) {
    process.stderr.write(`settledesk: ${startFailure(error, config, logger)}\n`);
    process.exitCode = 1;
    if (!opened.stopping) {
      exitAfter(config.shutdownTimeoutMs, logger, 'releasing a failed start took too long: exiting');
    }
  } finally {
    await opened.stop().catch((error: unknown) => logger.error({ err: error }, 'error while stopping'));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('uncaughtException', onUncaught);
    logger.info('stopped');
  }
}

/** Operating errors whose message already names the cause and the setting to change. */
const selfExplainingErrors = [
  PortUnavailableError,
  SandboxPortInUseError,
  SandboxInUseError,
  ConfigError,
  WalletConfigError,
  OperatingError,
];
/** Connection and authentication failures: PostgreSQL is not where the settings say. */
const databaseErrorCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'CONNECT_TIMEOUT',
  '28000',
  '28P01',
  '3D000',
]);
const fileErrorCodes = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC']);

/** One line for a failed start; anything unexpected also goes to the log with its stack. */
function startFailure(error: unknown, config: Config, logger: Logger): string {
  if (selfExplainingErrors.some((type) => error instanceof type)) return (error as Error).message;
  const { code, path } = error as { code?: unknown; path?: unknown };
  const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
  if (typeof code === 'string' && databaseErrorCodes.has(code)) {
    const fix =
      config.databaseUrl === undefined
        ? `see ${config.dataDir}/pg.log, or set DATABASE_URL to a running server`
        : 'check DATABASE_URL';
    return `PostgreSQL could not be reached or refused the connection (${code}: ${message}); ${fix}`;
  }
  if (typeof code === 'string' && fileErrorCodes.has(code) && typeof path === 'string') {
    return `cannot write ${path} (${code}); set SETTLEDESK_DATA_DIR to a folder this user can write`;
  }
  logger.error({ err: error }, 'start failed');
  return `could not start: ${message} (the log has the details)`;
}

/** The ports `serve` listens on that settings fix; the sandbox's other listeners take free ones. */
function servePorts(config: Config): PortClaim[] {
  const api = { host: config.host, port: config.port, variable: 'PORT', hostVariable: 'HOST' };
  if (configuredEndpoints(config) !== undefined) return [api];
  // The in-process sandbox always listens on the loopback address.
  const sandbox = {
    host: '127.0.0.1',
    port: config.sandbox.port,
    variable: 'SANDBOX_PORT',
    hostVariable: 'HOST',
  };
  return [api, sandbox];
}

export function registerServeCommands(program: Command): void {
  program
    .command('serve')
    .description('run the API and (unless SETTLEDESK_WORKER=false) the job worker; what `npm start` runs')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel);
      await runUntilSignal(config, logger, async (opened) => {
        // Before the slow steps: the embedded database takes seconds to start (about 17 s at first).
        await assertPortsFree(servePorts(config));
        const runtime = await openRuntime(config, logger, {
          migrate: true,
          applicationName: 'settledesk-api',
        });
        opened.add('database', () => runtime.close());
        if (opened.stopping) return;
        const probe = startDatabaseProbe(runtime.sql, logger);
        opened.add('database probe', () => probe.stop());
        // The sandbox stops after the service has drained, so in-flight work can still reach it.
        const stellar = await openStellar(config, logger);
        opened.add('stellar', () => stellar.close());
        if (opened.stopping) return;
        const service = await startService(runtime, {
          worker: config.workerEnabled,
          stellar: stellar.endpoints,
        });
        opened.add('api', () => service.stop());
        logger.info(
          {
            url: service.url,
            worker: config.workerEnabled,
            stellarNetwork: stellar.endpoints.network,
            horizonUrls: stellar.endpoints.horizonUrls,
            rpcUrl: stellar.endpoints.rpcUrl,
          },
          'settledesk is serving',
        );
      });
    });

  program
    .command('worker')
    .description('run only the background job worker')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel);
      await runUntilSignal(config, logger, async (opened) => {
        const metricsPort = {
          host: config.host,
          port: config.workerMetricsPort,
          variable: 'WORKER_METRICS_PORT',
          hostVariable: 'HOST',
        };
        await assertPortsFree([metricsPort]);
        // Where Stellar is, before anything opens: without it the worker cannot settle payouts.
        const stellar = await findStellar(config);
        const runtime = await openRuntime(config, logger, {
          migrate: true,
          applicationName: 'settledesk-worker',
        });
        opened.add('database', () => runtime.close());
        if (opened.stopping) return;
        const probe = startDatabaseProbe(runtime.sql, logger);
        opened.add('database probe', () => probe.stop());
        const worker = await startJobs(runtime, undefined, stellar);
        opened.add('job worker', () => worker.stop());
        const reporter = reportLoops(runtime, 'worker');
        opened.add('loop reporter', () => reporter.stop());
        // Running loops is this process's whole job: a wedged one makes it not ready.
        runtime.health.register(
          ownLoopsCheck({ critical: true, staleSecondsMin: config.loops.staleSecondsMin }),
        );
        const metrics = await startMetricsListener({
          host: config.host,
          port: config.workerMetricsPort,
          logger,
          health: runtime.health,
        });
        opened.add('metrics listener', () => metrics.stop());
        logger.info({ metrics: metrics.url }, 'settledesk worker is running');
      });
    });
}
