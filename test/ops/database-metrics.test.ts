import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/platform/db/embedded.ts';
import { statementGroupsMax } from '../../src/platform/db/statement-group.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { type Sample, scrapeSamples } from '../support/metrics.ts';
import { finished, spawnCli, waitFor } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

/**
 * The database health metrics as scraped from a running `settledesk serve` (API, job worker,
 * database probe), not read from code: the series the alerts and the database dashboard use, with
 * the label values they expect.
 */

const poolMax = 7;
const workerConcurrency = 3;
const startMsMax = 90_000;
const figuresMsMax = 30_000;

let db: TestDatabase;
let serve: ReturnType<typeof spawnCli>;
let port = 0;
let env: Record<string, string>;

function scrape(): Promise<Sample[]> {
  return scrapeSamples(`http://127.0.0.1:${port}/metrics`);
}

function sampled(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find(
    (sample) =>
      sample.name === name &&
      Object.entries(labels).every(([label, value]) => sample.labels[label] === value),
  )?.value;
}

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  env = await testEnv(db, {
    PORT: String(port),
    DATABASE_POOL_MAX: String(poolMax),
    WORKER_CONCURRENCY: String(workerConcurrency),
    WORKER_POLL_INTERVAL_MS: '100',
  });
  serve = spawnCli(['serve'], env);
  await waitFor(
    async () => ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok ? true : undefined),
    startMsMax,
    'serve to be ready',
  );
}, startMsMax);

afterAll(async () => {
  if (serve?.pid !== undefined && serve.exitCode === null) {
    serve.kill('SIGTERM');
    await finished(serve);
  }
  await db?.drop();
});

describe('database metrics as scraped from a running settledesk worker', () => {
  it(
    'reports the jobs pool and the probe on its metrics listener',
    async () => {
      const metricsPort = await freePort();
      // The same data folder as serve: the worker finds serve's sandbox network there.
      const worker = spawnCli(['worker'], { ...env, WORKER_METRICS_PORT: String(metricsPort) });
      try {
        const samples = await waitFor(
          async () => {
            const scraped = await scrapeSamples(`http://127.0.0.1:${metricsPort}/metrics`);
            const probed = (sampled(scraped, 'db_probes_total', { result: 'success' }) ?? 0) > 0;
            return probed && sampled(scraped, 'db_pool_size', { pool: 'jobs' }) !== undefined
              ? scraped
              : undefined;
          },
          startMsMax,
          'the worker to report its pools and a probe',
        ).catch((error: unknown) => {
          throw new Error(`${String(error)}; stderr: ${worker.output().stderr}`);
        });
        expect(sampled(samples, 'db_pool_size', { pool: 'main' })).toBe(poolMax);
        expect(sampled(samples, 'db_pool_size', { pool: 'jobs' })).toBe(workerConcurrency + 2);
        expect(sampled(samples, 'db_up')).toBe(1);
        expect(sampled(samples, 'db_probes_total', { result: 'failed' })).toBe(0);
        expect(
          sampled(samples, 'worker_runs_total', { worker: 'db_probe', result: 'success' }),
        ).toBeGreaterThan(0);
      } finally {
        worker.kill('SIGTERM');
        await finished(worker);
      }
    },
    startMsMax,
  );
});

describe('database metrics as scraped from a running settledesk serve', () => {
  it('reports both pools with their sizes, and what they hold now', async () => {
    const samples = await waitFor(
      async () => {
        const scraped = await scrape();
        return sampled(scraped, 'db_pool_size', { pool: 'jobs' }) === undefined ? undefined : scraped;
      },
      figuresMsMax,
      'the jobs pool to be reported',
    );
    expect(sampled(samples, 'db_pool_size', { pool: 'main' })).toBe(poolMax);
    expect(sampled(samples, 'db_pool_size', { pool: 'jobs' })).toBe(workerConcurrency + 2);
    const pools = samples.filter((sample) => sample.name === 'db_pool_connections_in_use');
    expect(pools.map((sample) => sample.labels.pool).sort()).toEqual(['jobs', 'main']);
    const waiting = samples.filter((sample) => sample.name === 'db_pool_waiting');
    expect(waiting.map((sample) => sample.labels.pool).sort()).toEqual(['jobs', 'main']);
  });

  it('times queries by statement group: verb:table or the verb alone, bounded, with buckets at the 100 ms threshold', async () => {
    const samples = await scrape();
    const counts = samples.filter((sample) => sample.name === 'db_query_duration_seconds_count');
    const groups = counts.map((sample) => sample.labels.group ?? '');
    expect(groups.length).toBeLessThanOrEqual(statementGroupsMax + 1);
    expect(
      groups.filter(
        (group) =>
          !/^(?:select|insert|update|delete|with|lock|set|call|truncate)(?::[a-z_][a-z0-9_.]*)?$|^other$/.test(
            group,
          ),
      ),
    ).toEqual([]);
    // Readiness and the probe run select 1; the workers read graphile's and our tables.
    expect(sampled(samples, 'db_query_duration_seconds_count', { group: 'select' })).toBeGreaterThan(0);
    expect(groups.some((group) => group.includes(':'))).toBe(true);
    expect(
      sampled(samples, 'db_query_duration_seconds_bucket', { group: 'select', le: '0.1' }),
    ).toBeDefined();
  });

  it('probes the database: db_up 1, successful probes counted, the failed series at zero, the probe loop counted', async () => {
    const samples = await scrape();
    expect(sampled(samples, 'db_up')).toBe(1);
    expect(sampled(samples, 'db_probes_total', { result: 'success' })).toBeGreaterThan(0);
    expect(sampled(samples, 'db_probes_total', { result: 'failed' })).toBe(0);
    expect(sampled(samples, 'worker_runs_total', { worker: 'db_probe', result: 'success' })).toBeGreaterThan(
      0,
    );
    expect(sampled(samples, 'worker_interval_seconds', { worker: 'db_probe' })).toBe(5);
  });

  it('reads sessions by state, the server limit, standbys and a lock wait from the server', async () => {
    const holder = postgres(db.url, { max: 2, onnotice: () => {} });
    try {
      await holder`create table lock_target (id int primary key)`;
      await holder`insert into lock_target values (1)`;
      const locked = await holder.reserve();
      const waiting = await holder.reserve();
      await locked`begin`;
      await locked`select id from lock_target where id = 1 for update`;
      const blocked = waiting`update lock_target set id = 1 where id = 1`.execute();
      const samples = await waitFor(
        async () => {
          const scraped = await scrape();
          return sampled(scraped, 'db_locks_waiting') === 1 ? scraped : undefined;
        },
        figuresMsMax,
        'the lock wait to be reported',
      );
      expect(sampled(samples, 'db_connections', { state: 'active' })).toBeGreaterThan(0);
      expect(sampled(samples, 'db_connections', { state: 'idle_in_transaction' })).toBeGreaterThan(0);
      const states = samples.filter((sample) => sample.name === 'db_connections').map((s) => s.labels.state);
      expect(states.sort()).toEqual([
        'active',
        'disabled',
        'fastpath_function_call',
        'idle',
        'idle_in_transaction',
        'idle_in_transaction_aborted',
        'other',
        'unknown',
      ]);
      expect(sampled(samples, 'db_connections_max')).toBeGreaterThan(poolMax);
      // The shared test server has no standby: none reported, and no lag series.
      expect(sampled(samples, 'db_replication_standbys')).toBe(0);
      expect(samples.filter((sample) => sample.name === 'db_replication_lag_seconds')).toEqual([]);
      await locked`rollback`;
      await blocked;
      locked.release();
      waiting.release();
    } finally {
      await holder.end({ timeout: 1 });
    }
  });
});
