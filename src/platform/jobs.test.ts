import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/process.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { startJobs } from '../server.ts';
import { heartbeatTask } from './heartbeat.ts';
import { enqueueJob, type Worker } from './jobs.ts';
import { workerRuns } from './metrics.ts';

let service: TestService;
let worker: Worker;

beforeAll(async () => {
  service = await startTestService({
    env: { WORKER_POLL_INTERVAL_MS: '50', ONCALL_TIME_ZONE: 'Asia/Tokyo' },
  });
  worker = await startJobs(service.runtime);
});

afterAll(async () => {
  await worker.stop();
  await service.close();
});

async function jobsWithKey(key: string): Promise<number> {
  const [row] = await service.db.sql<{ count: number }[]>`
    select count(*)::int as count from graphile_worker.jobs where key = ${key}`;
  return row?.count ?? 0;
}

async function heartbeatSuccesses(): Promise<number> {
  const metric = await workerRuns.get();
  return (
    metric.values.find((value) => value.labels.worker === heartbeatTask && value.labels.result === 'success')
      ?.value ?? 0
  );
}

describe('background jobs', () => {
  it('counts a job that ran in worker_runs_total and shows it on /metrics', async () => {
    // The worker beats once at start; wait for that, then prove a job enqueued now is counted too.
    await waitFor(
      async () => ((await heartbeatSuccesses()) > 0 ? true : undefined),
      20_000,
      'the start beat',
    );
    const before = await heartbeatSuccesses();
    await service.db.sql.begin((tx) => enqueueJob(tx, heartbeatTask, {}, { jobKey: 'counted-probe' }));
    await waitFor(
      async () => ((await heartbeatSuccesses()) > before ? true : undefined),
      20_000,
      'the job to run',
    );
    const metrics = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/worker_runs_total\{worker="platform_heartbeat",result="success"\} [1-9]/);
  });

  it('exports oncall_business_hours in its configured time zone beside the queues it reports', async () => {
    const metrics = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^oncall_business_hours\{time_zone="Asia\/Tokyo"\} [01]$/m);
  });

  it('does not keep a job enqueued in a transaction that rolls back', async () => {
    const failure = new Error('the write that caused the job failed');
    await expect(
      service.db.sql.begin(async (tx) => {
        await enqueueJob(
          tx,
          heartbeatTask,
          {},
          { runAt: new Date(Date.now() + 3_600_000), jobKey: 'rollback-probe' },
        );
        const [inside] = await tx<
          { count: number }[]
        >`select count(*)::int as count from graphile_worker.jobs where key = 'rollback-probe'`;
        expect(inside?.count).toBe(1);
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await jobsWithKey('rollback-probe')).toBe(0);
  });
});
