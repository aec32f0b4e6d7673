import { type JobHelpers, type Runner, run, type TaskList, Logger as WorkerLogger } from 'graphile-worker';
import pg from 'pg';
import { primaryHostUrl } from './db/multi-host.ts';
import type { Executor } from './db/types.ts';
import type { Logger } from './logging.ts';
import { workerRuns } from './metrics.ts';

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

/** Every task is counted in `worker_runs_total{worker,result}` and logged once per outcome. */
export function instrument(tasks: TaskMap): TaskList {
  const list: TaskList = {};
  for (const [name, task] of Object.entries(tasks)) {
    list[name] = async (payload, helpers) => {
      const started = performance.now();
      try {
        await task(payload, helpers);
        workerRuns.inc({ worker: name, result: 'success' });
        helpers.logger.debug(`task ${name} succeeded`, {
          jobId: helpers.job.id,
          attempt: helpers.job.attempts,
          durationMs: Math.round(performance.now() - started),
        });
      } catch (error) {
        workerRuns.inc({ worker: name, result: 'failure' });
        throw error;
      }
    };
  }
  return list;
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
  const pool = new pg.Pool({ connectionString, max: options.concurrency + 2 });
  pool.on('error', (error) => options.logger.warn({ err: error }, 'job worker lost a database connection'));
  let runner: Runner;
  try {
    runner = await run({
      pgPool: pool,
      taskList: instrument(options.tasks),
      crontab: options.crontab ?? '',
      concurrency: options.concurrency,
      pollInterval: options.pollIntervalMs,
      noHandleSignals: true,
      logger: workerLogger(options.logger),
    });
  } catch (error) {
    // A worker that never ran must not keep its connections: the process could not exit.
    await pool.end();
    throw error;
  }
  return {
    runner,
    stop: async () => {
      await runner.stop();
      await pool.end();
    },
  };
}
