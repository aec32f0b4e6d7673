import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/process.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { startJobs } from '../server.ts';
import { heartbeatTask } from './heartbeat.ts';
import { enqueueJob, type Worker } from './jobs.ts';

let service: TestService;
let worker: Worker;

beforeAll(async () => {
  service = await startTestService({ env: { WORKER_POLL_INTERVAL_MS: '50' } });
  worker = await startJobs(service.runtime);
});

afterAll(async () => {
  await worker.stop();
  await service.close();
});

async function jobCount(): Promise<number> {
  const [row] = await service.db.sql<{ count: number }[]>`
    select count(*)::int as count from graphile_worker.jobs where task_identifier = ${heartbeatTask}`;
  return row?.count ?? 0;
}

describe('background jobs', () => {
  it('counts a job that ran in worker_runs_total and shows it on /metrics', async () => {
    const { sql } = service.db;
    await sql.begin((tx) => enqueueJob(tx, heartbeatTask, {}));
    await waitFor(
      async () => {
        const [row] = await sql`select worker_id from worker_heartbeats`;
        return row;
      },
      20_000,
      'the heartbeat job to run',
    );
    const metrics = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/worker_runs_total\{worker="platform_heartbeat",result="success"\} [1-9]/);
  });

  it('does not keep a job enqueued in a transaction that rolls back', async () => {
    const before = await jobCount();
    const failure = new Error('the write that caused the job failed');
    await expect(
      service.db.sql.begin(async (tx) => {
        await enqueueJob(tx, heartbeatTask, {}, { runAt: new Date(Date.now() + 3_600_000) });
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await jobCount()).toBe(before);
  });
});
