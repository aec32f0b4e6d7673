import { randomUUID } from 'node:crypto';
import { parseCrontab } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/process.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { domainCrontab, domainTasks } from '../domains.ts';
import { enqueueJob, type Worker } from '../platform/jobs.ts';
import { startJobs } from '../server.ts';
import { claimLease, releaseLease } from './data.ts';
import { detectorNames } from './findings.ts';
import { runDetector } from './runner.ts';
import { detectorTasks, reconcileTaskOf, reconciliationCrontab } from './tasks.ts';
import { metric, testDeps } from './test-support.ts';

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

describe('reconciliation tasks', () => {
  it('schedules every detector each minute, one waiting job per detector, no retries', () => {
    const items = parseCrontab(reconciliationCrontab);
    expect(items.map((item) => item.task)).toEqual(detectorNames.map(reconcileTaskOf));
    for (const item of items) {
      expect(item.options).toMatchObject({ jobKey: item.task, jobKeyMode: 'replace', maxAttempts: 1 });
    }
    for (const line of reconciliationCrontab.split('\n')) expect(line).toMatch(/^\* \* \* \* \* reconcile_/);
    expect(domainCrontab).toContain(reconciliationCrontab);
  });

  it('registers the Stellar detectors only where Stellar can be reached', async () => {
    const withoutChain = Object.keys(detectorTasks(testDeps(service.db.sql), undefined));
    expect(withoutChain).toEqual(
      (['ledger_balance', 'account_balances', 'stuck_settlements', 'escrow', 'payout_volume'] as const).map(
        reconcileTaskOf,
      ),
    );
    const chain = async () => ({ horizonUrls: ['http://127.0.0.1:9'], hotWallet: 'G' });
    expect(Object.keys(detectorTasks(testDeps(service.db.sql), chain))).toHaveLength(detectorNames.length);
    expect(Object.keys(domainTasks(service.runtime, service.domains))).toEqual(
      expect.arrayContaining(withoutChain),
    );
  });

  it('runs a detector as a job of the worker, counted as worker="reconciliation" and by detector', async () => {
    const task = reconcileTaskOf('escrow');
    const byDetector = { detector: 'escrow', result: 'success' };
    const before = await metric('reconciliation_runs_total', byDetector);
    const beforeAll = await metric('worker_runs_total', { worker: 'reconciliation', result: 'success' });
    await service.db.sql.begin((tx) => enqueueJob(tx, task, {}, { jobKey: task }));
    await waitFor(
      async () => ((await metric('reconciliation_runs_total', byDetector)) > before ? true : undefined),
      20_000,
      'the reconciliation job to run',
    );
    await waitFor(
      async () =>
        (await metric('worker_runs_total', { worker: 'reconciliation', result: 'success' })) > beforeAll
          ? true
          : undefined,
      20_000,
      'the run to be counted under worker="reconciliation"',
    );
    expect(await metric('worker_runs_total', { worker: task, result: 'success' })).toBe(0);
    const [checkpoint] = await service.db.sql<{ lastSuccessAt: Date | null; lease: string | null }[]>`
      select last_success_at as "lastSuccessAt", lease from reconciliation_checkpoints where detector = 'escrow'`;
    expect(checkpoint?.lastSuccessAt).not.toBeNull();
    expect(checkpoint?.lease).toBeNull();
  });

  it('runs a detector in one process at a time: another one finds it busy and changes nothing', async () => {
    const held = randomUUID();
    // This service's own worker may be running the detector from its crontab: wait for it.
    await waitFor(
      async () => ((await claimLease(service.db.sql, 'stuck_settlements', held, 60)) ? true : undefined),
      10_000,
      'the stuck_settlements lease',
    );
    const busy = await runDetector(testDeps(service.db.sql), 'stuck_settlements');
    expect(busy.outcome).toBe('busy');
    await releaseLease(service.db.sql, 'stuck_settlements', held, false);

    // Two claims at the same moment: the row lock orders them, and only the first gets the lease.
    // (Two whole runs would race: one may finish before the other starts, and both complete.)
    await waitFor(
      async () => ((await claimLease(service.db.sql, 'account_balances', held, 60)) ? true : undefined),
      10_000,
      'the account_balances lease to be free',
    );
    await releaseLease(service.db.sql, 'account_balances', held, false);
    const claims = await Promise.all([
      claimLease(service.db.sql, 'account_balances', randomUUID(), 60),
      claimLease(service.db.sql, 'account_balances', randomUUID(), 60),
    ]);
    expect(claims.filter((claim) => claim !== undefined)).toHaveLength(1);
  });
});
