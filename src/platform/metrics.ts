import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

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

export const workerRuns = new Counter({
  name: 'worker_runs_total',
  help: 'Background worker task runs by task name and result (success or failure).',
  labelNames: ['worker', 'result'] as const,
  registers: [registry],
});
