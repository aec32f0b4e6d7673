import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Executor } from './db/types.ts';
import type { Logger } from './logging.ts';
import { type LoopState, loopStates, staleAfterSeconds } from './loops.ts';
import { type Poller, startPoller } from './poller.ts';

/**
 * Every process that runs loops writes them into `worker_loops` every `reportIntervalMs`, so the
 * triage summary (which may run in a CLI with every worker dead) can say which loops no process
 * runs any more and which processes went quiet. It is itself a loop (`loop_reporter`).
 */

/** The `worker` label of the reporter in worker_runs_total. */
export const loopReporterWorker = 'loop_reporter';
/**
 * Rows of a process silent this long are deleted: as long as WorkerLoopStale remembers a loop
 * (`last_over_time(…[1d])`), so triage and the alert forget a loop nobody runs at the same time.
 */
export const loopRowsKeepSeconds = 86_400;
/** Rows deleted per report at most: a fleet's worth of dead processes goes over a few reports. */
export const loopRowsPruneMax = 500;
/** A process is called silent after this many missed reports. */
export const silentAfterReports = 3;

export type LoopReport = {
  worker: string;
  intervalSeconds: number;
  staleAfterSeconds: number;
  ageSeconds: number;
};

/** The id a process reports under: its role, host and pid, and a suffix for pids reused later. */
export function newProcessId(role: string): string {
  return `${role}@${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export function loopReports(
  states: readonly LoopState[],
  staleSecondsMin: number,
  nowMs: number,
): LoopReport[] {
  return states.map((loop) => ({
    worker: loop.worker,
    intervalSeconds: loop.intervalSeconds,
    staleAfterSeconds: staleAfterSeconds(loop.intervalSeconds, staleSecondsMin),
    ageSeconds: Math.max(0, (nowMs - loop.lastSuccessMs) / 1_000),
  }));
}

/** Ages, not timestamps, go to the database: its clock dates them, whatever this host's says. */
export async function upsertLoops(
  db: Executor,
  processId: string,
  reportIntervalSeconds: number,
  loops: readonly LoopReport[],
): Promise<void> {
  await db`
    insert into worker_loops (process_id, worker, interval_seconds, stale_after_seconds,
                              last_success_at, report_interval_seconds, reported_at)
    select ${processId}::text, loop.worker, loop.interval, loop.stale_after,
           now() - make_interval(secs => loop.age), ${reportIntervalSeconds}::float8, now()
    from unnest(${loops.map((loop) => loop.worker)}::text[],
                ${loops.map((loop) => loop.intervalSeconds)}::float8[],
                ${loops.map((loop) => loop.staleAfterSeconds)}::float8[],
                ${loops.map((loop) => loop.ageSeconds)}::float8[]) as loop(worker, interval, stale_after, age)
    on conflict (process_id, worker) do update set
      interval_seconds = excluded.interval_seconds,
      stale_after_seconds = excluded.stale_after_seconds,
      last_success_at = excluded.last_success_at,
      report_interval_seconds = excluded.report_interval_seconds,
      reported_at = excluded.reported_at`;
}

export async function deleteSilentLoops(db: Executor, silentSeconds: number, limit: number): Promise<number> {
  const deleted = await db`
    delete from worker_loops where (process_id, worker) in (
      select process_id, worker from worker_loops
      where reported_at < now() - make_interval(secs => ${silentSeconds}::float8)
      order by reported_at limit ${limit}::int)`;
  return deleted.count;
}

export type LoopRow = {
  worker: string;
  /** Since the newest success any process reported. */
  ageSeconds: number;
  intervalSeconds: number;
  staleAfterSeconds: number;
  /** Processes that report it, newest report first (at most `processesShownMax`). */
  processes: string[];
  processCount: number;
};

export const processesShownMax = 10;

/** Each loop judged across processes, as WorkerLoopStale judges it (max of last success). */
export async function selectLoops(db: Executor, limit: number): Promise<LoopRow[]> {
  return db<LoopRow[]>`
    select worker,
           extract(epoch from now() - max(last_success_at))::float8 as "ageSeconds",
           max(interval_seconds) as "intervalSeconds",
           max(stale_after_seconds) as "staleAfterSeconds",
           (array_agg(process_id order by reported_at desc))[1:${processesShownMax}::int] as processes,
           count(*)::int as "processCount"
    from worker_loops group by worker order by worker limit ${limit}::int`;
}

export type SilentProcess = { processId: string; silentSeconds: number };

/** Processes that missed `silentAfterReports` of their reports, most recently silent first. */
export async function selectSilentProcesses(db: Executor, limit: number): Promise<SilentProcess[]> {
  return db<SilentProcess[]>`
    select process_id as "processId",
           extract(epoch from now() - max(reported_at))::float8 as "silentSeconds"
    from worker_loops group by process_id
    having max(reported_at) < now() - make_interval(secs => ${silentAfterReports}::int * max(report_interval_seconds))
    order by max(reported_at) desc limit ${limit}::int`;
}

/** Reports this process's loops (the reporter included) and prunes long-silent processes. */
export function startLoopReporter(options: {
  db: Executor;
  role: string;
  reportIntervalMs: number;
  staleSecondsMin: number;
  logger: Logger;
}): Poller & { processId: string } {
  const processId = newProcessId(options.role);
  const reportIntervalSeconds = options.reportIntervalMs / 1_000;
  const poller = startPoller({
    name: 'loop reporter',
    worker: loopReporterWorker,
    round: async () => {
      const loops = loopReports(loopStates(), options.staleSecondsMin, Date.now());
      await upsertLoops(options.db, processId, reportIntervalSeconds, loops);
      await deleteSilentLoops(options.db, loopRowsKeepSeconds, loopRowsPruneMax);
      return false;
    },
    pollMs: options.reportIntervalMs,
    logger: options.logger,
  });
  options.logger.info({ processId }, 'reporting loops');
  return { ...poller, processId };
}
