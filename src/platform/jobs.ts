import { type JobHelpers, type Runner, run, type TaskList, Logger as WorkerLogger } from 'graphile-worker';
import pg from 'pg';
import { Counter } from 'prom-client';
import { assert } from './assert.ts';
import { primaryClient, UnavailableWhenBrokenClient, writableHostTargets } from './db/multi-host.ts';
import { registerPool } from './db/observe.ts';
import type { Executor } from './db/types.ts';
import type { Logger } from './logging.ts';
import { countWorkerRun, registerLoop, registry } from './metrics.ts';

export type Task = (payload: unknown, helpers: JobHelpers) => Promise<void>;
export type TaskMap = Readonly<Record<string, Task>>;

export type EnqueueOptions = {
  /** Domain id that makes the job unique: a second enqueue with the same key replaces the first. */
  jobKey?: string;
  runAt?: Date;
  maxAttempts?: number;
  queueName?: string;
};

const maxAttemptsDefault = 25;

/**
 * Adds a job inside the caller's transaction, so a job exists if and only if the write that causes
 * it commits.
 */
export async function enqueueJob(
  db: Executor,
  task: string,
  payload: Readonly<Record<string, unknown>>,
  options: EnqueueOptions = {},
): Promise<void> {
  await db`
    select graphile_worker.add_job(
      ${task}::text,
      ${db.json(payload as Parameters<typeof db.json>[0])}::json,
      queue_name => ${options.queueName ?? null}::text,
      run_at => ${options.runAt ?? null}::timestamptz,
      max_attempts => ${options.maxAttempts ?? maxAttemptsDefault}::int,
      job_key => ${options.jobKey ?? null}::text
    )`;
}

/** The worker a task is counted as: its own name unless `workerOf` groups it with others. */
export type WorkerOf = (task: string) => string;

/**
 * Every task is counted in `worker_runs_total{worker,result}` (with its last success in
 * `worker_last_success_timestamp_seconds`) and logged once per outcome.
 */
export function instrument(tasks: TaskMap, workerOf: WorkerOf = (task) => task): TaskList {
  const list: TaskList = {};
  for (const [name, task] of Object.entries(tasks)) {
    const worker = workerOf(name);
    list[name] = async (payload, helpers) => {
      const started = performance.now();
      try {
        await task(payload, helpers);
        countWorkerRun(worker, 'success');
        helpers.logger.debug(`task ${name} succeeded`, {
          jobId: helpers.job.id,
          attempt: helpers.job.attempts,
          durationMs: Math.round(performance.now() - started),
        });
      } catch (error) {
        countWorkerRun(worker, 'failed');
        throw error;
      }
    };
  }
  return list;
}

/**
 * The interval of a crontab line of ours: every minute (`* * * * *`) or every N minutes
 * (`*\/N * * * *`). Other schedules are not used; one would need its own rule here.
 */
export function cronIntervalSeconds(line: string): { task: string; intervalSeconds: number } {
  const [minute, hour, day, month, weekday, task] = line.trim().split(/\s+/);
  const every = minute === '*' ? 1 : Number(/^\*\/(\d+)$/.exec(minute ?? '')?.[1]);
  assert(
    Number.isInteger(every) && every > 0 && [hour, day, month, weekday].every((field) => field === '*'),
    `crontab line "${line}" is not every minute or every N minutes`,
  );
  assert(task !== undefined, `crontab line "${line}" names no task`);
  return { task, intervalSeconds: every * 60 };
}

/** Declares each scheduled task as a loop any worker process may run (registerLoop, `shared`). */
export function registerCronLoops(crontab: string, workerOf: WorkerOf): void {
  for (const line of crontab.split('\n').filter((entry) => entry.trim() !== '')) {
    const { task, intervalSeconds } = cronIntervalSeconds(line);
    registerLoop(workerOf(task), intervalSeconds, 'shared');
  }
}

function workerLogger(logger: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const child = logger.child({ component: 'worker', ...scope, ...meta });
    if (level === 'error') child.error(message);
    else if (level === 'warning') child.warn(message);
    else if (level === 'info') child.info(message);
    else child.debug(message);
  });
}

export type WorkerOptions = {
  connectionString: string;
  tasks: TaskMap;
  crontab?: string;
  /** Groups tasks under one worker name in the metrics (the detectors are `reconciliation`). */
  workerOf?: WorkerOf;
  concurrency: number;
  pollIntervalMs: number;
  logger: Logger;
};

export type Worker = { stop(): Promise<void>; runner: Runner };

/**
 * Connections of the job worker's pool that failed: an idle one the server dropped or a new one
 * that found no writable host. Logged once per outage; counted each time.
 */
export const jobConnectionsLost = new Counter({
  name: 'job_worker_connections_lost_total',
  help: 'Database connections of the job worker that were lost or could not be opened (a restart or failover of the database).',
  registers: [registry],
});

/**
 * graphile-worker's pool on pg, which takes one host. With a multi-host read-write URL every new
 * connection finds the writable host first (`primaryClient`), so after a failover the same pool,
 * and so the same runner, reaches the promoted primary without a restart: job fetching retries
 * every poll interval, the LISTEN connection reconnects with backoff, cron retries its tick, and a
 * job completed or failed meanwhile is retried (57P03) until a host accepts writes. Stopping and
 * restarting the runner instead was the other choice; it would rebuild all of these to no gain.
 * A connection that breaks in the middle of storing a job's result fails with 57P03 too, on a
 * single-host URL as well (`UnavailableWhenBrokenClient`), so that store is retried rather than
 * ending the process.
 */
/** The job runner's connections at once, and two for its LISTEN and cron. */
function jobPoolSize(options: WorkerOptions): number {
  return options.concurrency + 2;
}

function jobPool(options: WorkerOptions): pg.Pool {
  const targets = writableHostTargets(options.connectionString);
  let lostSince: number | undefined;
  const lost = (error: Error) => {
    jobConnectionsLost.inc();
    if (lostSince !== undefined) return;
    lostSince = performance.now();
    options.logger.warn({ err: error }, 'job worker lost a database connection');
  };
  const pool = new pg.Pool({
    connectionString: targets?.[0]?.url ?? options.connectionString,
    Client: targets === undefined ? UnavailableWhenBrokenClient : primaryClient(targets, lost),
    max: jobPoolSize(options),
  });
  // An 'error' event nobody listens to ends the process. graphile-worker adds listeners only to a
  // pool that has none, so this pool listens itself: on each client, checked out or idle (where it
  // is counted), and on the pool, which repeats an idle client's error.
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', lost);
    if (lostSince === undefined) return;
    options.logger.info(
      { host: `${client.host}:${client.port}`, durationMs: Math.round(performance.now() - lostSince) },
      'job worker reconnected to the database',
    );
    lostSince = undefined;
  });
  return pool;
}

/** Starts a job runner; `stop` lets running jobs finish before it resolves. */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const pool = jobPool(options);
  const unregisterPool = registerPool('jobs', () => ({
    inUse: pool.totalCount - pool.idleCount,
    size: jobPoolSize(options),
    waiting: pool.waitingCount,
  }));
  const workerOf = options.workerOf ?? ((task: string) => task);
  registerCronLoops(options.crontab ?? '', workerOf);
  let runner: Runner;
  try {
    runner = await run({
      pgPool: pool,
      taskList: instrument(options.tasks, workerOf),
      crontab: options.crontab ?? '',
      concurrency: options.concurrency,
      pollInterval: options.pollIntervalMs,
      noHandleSignals: true,
      logger: workerLogger(options.logger),
    });
  } catch (error) {
    // A worker that never ran must not keep its connections: the process could not exit.
    unregisterPool();
    await pool.end();
    throw error;
  }
  return {
    runner,
    stop: async () => {
      await runner.stop();
      unregisterPool();
      await pool.end();
    },
  };
}
