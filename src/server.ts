import { createRequire } from 'node:module';
import { domainCrontab, domainRoutes, domainTasks } from './domains.ts';
import { startKeyringSync } from './platform/auth/keyring.ts';
import { TokenRejected, verifyToken } from './platform/auth/tokens.ts';
import { DomainError } from './platform/errors.ts';
import { type App, createApp } from './platform/http/app.ts';
import type { Authenticator } from './platform/http/auth.ts';
import { startWorker, type Worker } from './platform/jobs.ts';
import type { Runtime } from './platform/runtime.ts';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export function authenticator(runtime: Runtime): Authenticator {
  return async (token) => {
    try {
      return await verifyToken(runtime.keyring, token);
    } catch (error) {
      if (error instanceof TokenRejected)
        throw new DomainError('auth/unauthenticated', 'the bearer token was refused');
      throw error;
    }
  };
}

export async function buildApp(runtime: Runtime): Promise<App> {
  return createApp({
    logger: runtime.logger,
    authenticator: authenticator(runtime),
    bodyBytesMax: runtime.config.requestBodyBytesMax,
    routes: domainRoutes(runtime),
    version,
  });
}

export async function startJobs(runtime: Runtime): Promise<Worker> {
  return startWorker({
    connectionString: runtime.databaseUrl,
    tasks: domainTasks(runtime),
    crontab: domainCrontab,
    concurrency: runtime.config.workerConcurrency,
    pollIntervalMs: runtime.config.workerPollIntervalMs,
    logger: runtime.logger,
  });
}

export type Service = { app: App; url: string; stop(): Promise<void> };

/**
 * Starts the API (and, unless disabled, the job worker) on an open runtime. `stop` drains in
 * order: stop accepting and finish in-flight requests, let running jobs finish, stop syncing keys.
 * The runtime (pool, embedded database) is closed by whoever opened it.
 */
export async function startService(runtime: Runtime, options: { worker: boolean }): Promise<Service> {
  const stopKeyringSync = await startKeyringSync(
    runtime.sql,
    runtime.keyring,
    runtime.config.keyringReloadMs,
    runtime.logger,
  );
  const app = await buildApp(runtime);
  const url = await app.listen({ host: runtime.config.host, port: runtime.config.port });
  const worker = options.worker ? await startJobs(runtime) : undefined;
  return {
    app,
    url,
    stop: async () => {
      await app.close();
      await worker?.stop();
      await stopKeyringSync();
    },
  };
}
