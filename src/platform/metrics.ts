import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Executor } from './db/types.ts';
import { type LoopScope, noteLoop, noteLoopSuccess } from './loops.ts';

/**
 * One registry for the process. Domains declare their metrics at module level against it, so a
 * metric exists (at zero) from the moment its domain is loaded, which keeps alert expressions
 * valid before the first event.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export const httpRequestDuration = new Histogram({
  name: 'http_request_duration_seconds',
  help: 'HTTP request duration by method, route template and status code.',
  labelNames: ['method', 'path', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

/**
 * Requests answered 503 because of the database: a connection lost or refused, no writable host
 * during a failover, or a database too busy (serialization, resources, lock timeout). `code` is
 * the SQLSTATE or connection code (src/platform/http/problems.ts lists the few that qualify), so
 * its values are bounded.
 */
export const httpDatabaseUnavailable = new Counter({
  name: 'http_database_unavailable_total',
  help: 'Requests answered 503 service/unavailable because of the database, by SQLSTATE or connection error code.',
  labelNames: ['code'] as const,
  registers: [registry],
});

/**
 * Whether the last rate-limit count of this process reached Redis (1) or fell back to this
 * instance's memory (0); absent without REDIS_URL. The RateLimitRedisDown alert reads it.
 */
export const rateLimitRedisUp = new Gauge({
  name: 'rate_limit_redis_up',
  help: 'Whether the last rate-limit count reached Redis (1) or fell back to per-instance memory (0).',
  registers: [registry],
});

export const rateLimitStoreFallback = new Counter({
  name: 'rate_limit_store_fallback_total',
  help: 'Requests counted against per-instance rate limits because Redis did not answer.',
  registers: [registry],
});

/** The two results of a background run; the operators' alerts name them (`result="failed"`). */
export type WorkerResult = 'success' | 'failed';

export const workerRuns = new Counter({
  name: 'worker_runs_total',
  help: 'Background runs by worker (a graphile task or a loop) and result (success or failed).',
  labelNames: ['worker', 'result'] as const,
  registers: [registry],
});

export const workerLastSuccess = new Gauge({
  name: 'worker_last_success_timestamp_seconds',
  help: 'Unix time of the latest successful run of each worker in this process (a loop: its start until then).',
  labelNames: ['worker'] as const,
  registers: [registry],
});

export const workerInterval = new Gauge({
  name: 'worker_interval_seconds',
  help: 'How often each periodic loop of this process is meant to succeed; the staleness alerts scale it.',
  labelNames: ['worker'] as const,
  registers: [registry],
});

/** Counts one run; a success also moves the worker's last-success time. */
export function countWorkerRun(worker: string, result: WorkerResult): void {
  workerRuns.inc({ worker, result });
  if (result === 'success') {
    const now = Date.now();
    workerLastSuccess.set({ worker }, now / 1_000);
    noteLoopSuccess(worker, now);
  }
}

/**
 * Declares a periodic loop run by this process. Both results exist from here at zero (so
 * increase() sees the first failure), and the last success starts at now: a loop that never
 * succeeds ages from its start, so the staleness alert covers it too. `scope` says whether this
 * process alone runs it or any worker process may (src/platform/loops.ts).
 */
export function registerLoop(worker: string, intervalSeconds: number, scope: LoopScope): void {
  const now = Date.now();
  workerInterval.set({ worker }, intervalSeconds);
  workerRuns.inc({ worker, result: 'success' }, 0);
  workerRuns.inc({ worker, result: 'failed' }, 0);
  workerLastSuccess.set({ worker }, now / 1_000);
  noteLoop(worker, intervalSeconds, scope, now);
}

/**
 * Figures that gauges count from the database when scraped, not values a worker sets: `/metrics`
 * is served by API processes while the work may run in a `settledesk worker` that serves none, and
 * a restarted process would report 0 until its next update. Counted from the database, every
 * process reports the same true figure (alert on max() across instances). One read per `cacheMs`
 * per process; if a read fails (database down) the last figure stays and the scrape still
 * succeeds: the database's own alerts cover that case.
 */
export function databaseFigures<T>(
  read: (db: Executor) => Promise<T>,
  initial: T,
  cacheMs: number,
): { from(db: Executor): void; current(): Promise<T> } {
  let source: Executor | undefined;
  let cached: { at: number; value: Promise<T> } | undefined;
  let last = initial;
  return {
    from(db) {
      source = db;
      cached = undefined;
    },
    async current() {
      if (source === undefined) return last;
      const now = Date.now();
      if (cached === undefined || now - cached.at > cacheMs) {
        const value = read(source).then(
          (figures) => {
            last = figures;
            return figures;
          },
          () => last,
        );
        cached = { at: now, value };
      }
      return cached.value;
    },
  };
}
