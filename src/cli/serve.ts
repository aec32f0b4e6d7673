import type { Command } from 'commander';
import { loadConfig } from '../platform/config.ts';
import { startMetricsListener } from '../platform/http/metrics-listener.ts';
import { createLogger, type Logger } from '../platform/logging.ts';
import { openRuntime, type Runtime } from '../platform/runtime.ts';
import { startJobs, startService } from '../server.ts';
import { findStellar, openStellar } from '../stellar/connect.ts';

/**
 * Starts, then runs until SIGINT/SIGTERM, then drains (`stop`) and closes the runtime within the
 * configured timeout. The handlers are installed before `start`, so a signal that arrives while
 * starting still drains what has started. A second signal, or an overrun, exits at once: an
 * operator pressing Ctrl-C twice means it.
 */
async function runUntilSignal(runtime: Runtime, start: () => Promise<() => Promise<void>>): Promise<void> {
  const logger = runtime.logger;
  let started: Promise<() => Promise<void>> | undefined;
  const stop = async () => (await (started ?? Promise.resolve(async () => {})))();
  const stopped = new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without draining');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      const overrun = setTimeout(() => {
        logger.error('shutdown took too long: exiting');
        process.exit(1);
      }, runtime.config.shutdownTimeoutMs);
      overrun.unref();
      stop()
        .catch((error: unknown) => logger.error({ err: error }, 'error while draining'))
        .then(() => runtime.close())
        .catch((error: unknown) => logger.error({ err: error }, 'error while closing'))
        .finally(() => {
          clearTimeout(overrun);
          logger.info('stopped');
          resolve();
        });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  started = start();
  try {
    await started;
  } catch (error) {
    // Nothing is serving yet: release what the runtime opened (the embedded database) and fail.
    await runtime.close();
    throw error;
  }
  await stopped;
}

async function open(applicationName: string): Promise<{ runtime: Runtime; logger: Logger }> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const runtime = await openRuntime(config, logger, { migrate: true, applicationName });
  return { runtime, logger };
}

export function registerServeCommands(program: Command): void {
  program
    .command('serve')
    .description('run the API and (unless SETTLEDESK_WORKER=false) the job worker; what `npm start` runs')
    .action(async () => {
      const { runtime, logger } = await open('settledesk-api');
      await runUntilSignal(runtime, async () => {
        const stellar = await openStellar(runtime.config, logger);
        const service = await startService(runtime, {
          worker: runtime.config.workerEnabled,
          stellar: stellar.endpoints,
        });
        logger.info(
          {
            url: service.url,
            worker: runtime.config.workerEnabled,
            stellarNetwork: stellar.endpoints.network,
            horizonUrls: stellar.endpoints.horizonUrls,
            rpcUrl: stellar.endpoints.rpcUrl,
          },
          'settledesk is serving',
        );
        // The sandbox stops after the service has drained, so in-flight work can still reach it.
        return async () => {
          try {
            await service.stop();
          } finally {
            await stellar.close();
          }
        };
      });
    });

  program
    .command('worker')
    .description('run only the background job worker')
    .action(async () => {
      // Where Stellar is, before anything opens: without it the worker cannot settle payouts.
      const stellar = await findStellar(loadConfig());
      const { runtime, logger } = await open('settledesk-worker');
      await runUntilSignal(runtime, async () => {
        const worker = await startJobs(runtime, undefined, stellar);
        const metrics = await startMetricsListener({
          host: runtime.config.host,
          port: runtime.config.workerMetricsPort,
          logger,
        });
        logger.info({ metrics: metrics.url }, 'settledesk worker is running');
        return async () => {
          await worker.stop();
          await metrics.stop();
        };
      });
    });
}
