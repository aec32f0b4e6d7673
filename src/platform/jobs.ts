import { type JobHelpers, type Runner, run, type TaskList, Logger as WorkerLogger } from 'graphile-worker';
import pg from 'pg';
import { assert } from './assert.ts';
import { primaryHostUrl } from './db/multi-host.ts';
import { registerPool } from './db/observe.ts';
import type { Executor } from './db/types.ts';
import type { Logger } from './logging.ts';
import { countWorkerRun, registerLoop } from './metrics.ts';

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

/** Starts a job runner; `stop` lets running jobs finish before it resolves. */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  // Our own pool, so that a connection dropped by the server (restart, failover) is logged and
  // replaced instead of surfacing as an unhandled 'error' event that kills the process.
  // pg takes one host: a multi-host URL is pinned to the primary of the moment (primaryHostUrl).
  const connectionString = await primaryHostUrl(options.connectionString);
  const poolMax = options.concurrency + 2;
  const pool = new pg.Pool({ connectionString, max: poolMax });
  pool.on('error', (error) => options.logger.warn({ err: error }, 'job worker lost a database connection'));
  const unregisterPool = registerPool('jobs', () => ({
    inUse: pool.totalCount - pool.idleCount,
    size: poolMax,
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
