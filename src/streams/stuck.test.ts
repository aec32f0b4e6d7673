import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { closeFindingByOperator } from '../reconciliation/close.ts';
import { runDetector } from '../reconciliation/runner.ts';
import { metric, openFindings, testDeps } from '../reconciliation/test-support.ts';
import { selectRun } from './data.ts';
import { settlementLagFrom } from './metrics.ts';
import { databaseNow } from './service.ts';
import { runSettlement, settleBatch, startRun } from './settlement.ts';
import { call, customer, unit } from './test-support.ts';

let service: TestService;

beforeAll(async () => {
  service = await startTestService();
  settlementLagFrom(service.db.sql);
});

afterAll(async () => {
  await service.close();
});

const hourMs = 3_600_000;

/** A stream to a fresh account that started an hour ago and lasts two: due now, for an hour already. */
async function dueStream(): Promise<string> {
  const payer = await customer(service, 100n * unit);
  const recipient = await customer(service, 0n);
  const now = (await databaseNow(service.db.sql)).getTime();
  const response = await call(service, 'POST', '/v1/streams', {
    payload: {
      payerAccountId: payer,
      recipientAccountId: recipient,
      asset: 'XLM',
      totalAmount: '12',
      startAt: new Date(now - hourMs).toISOString(),
      endAt: new Date(now + hourMs).toISOString(),
      settlement: { intervalSeconds: 60 },
    },
  });
  expect(response.statusCode, response.body).toBe(201);
  return String(response.json().id);
}

async function settlementsOf(streamId: string): Promise<{ runId: string; periodIndex: number }[]> {
  return service.db.sql<{ runId: string; periodIndex: number }[]>`
    select run_id as "runId", period_index as "periodIndex" from stream_settlements
    where stream_id = ${streamId}::uuid order by id`;
}

const detect = (settings: { streamRunStuckAfterSeconds?: number; streamOverdueAfterSeconds?: number }) =>
  runDetector(
    testDeps(service.db.sql, {
      settings: { streamRunStuckAfterSeconds: 3_600, streamOverdueAfterSeconds: 86_400, ...settings },
    }),
    'stuck_settlements',
  );

/** Ages a run as a crash long ago would have left it. */
async function backdate(runId: string, seconds: number): Promise<void> {
  await service.db.sql`
    update stream_settlement_runs set started_at = started_at - make_interval(secs => ${seconds}::int)
    where id = ${runId}::uuid`;
}

async function overdueSubjects(): Promise<string[]> {
  return (await openFindings(service.db.sql, 'stream_overdue')).map((finding) => finding.subject);
}

describe('stuck stream settlement', () => {
  it('a run left running past its threshold is abandoned and a stream_run_stuck finding; its settlement stays, the next run pays the rest once', async () => {
    const streams = [await dueStream(), await dueStream()];
    const asOf = await databaseNow(service.db.sql);
    // A run that crashed after its first batch (one stream) committed.
    const runId = await startRun(service.db.sql, asOf);
    await withTransaction(service.db.sql, (tx) => settleBatch(tx, { runId, asOf, limit: 1, skip: [] }));
    expect(await metric('stream_settlement_run_running_seconds')).toBeGreaterThan(0);

    // Younger than the threshold: left alone.
    await detect({ streamRunStuckAfterSeconds: 3_600 });
    expect((await selectRun(service.db.sql, runId))?.outcome).toBe('running');
    expect(await openFindings(service.db.sql, 'stream_run_stuck')).toEqual([]);

    await backdate(runId, 7_200);
    const abandonedBefore = await metric('stream_settlement_runs_total', { result: 'abandoned' });
    const report = await detect({ streamRunStuckAfterSeconds: 3_600 });
    expect(report.findings.created).toBe(1);
    const run = await selectRun(service.db.sql, runId);
    expect(run).toMatchObject({ outcome: 'abandoned', streamsSettled: 1 });
    expect(run?.error).toMatch(/STREAM_RUN_STUCK_AFTER_SECONDS/);
    expect(run?.finishedAt).toBeInstanceOf(Date);
    expect(await metric('stream_settlement_runs_total', { result: 'abandoned' })).toBe(abandonedBefore + 1);
    const [finding] = await openFindings(service.db.sql, 'stream_run_stuck');
    expect(finding).toMatchObject({
      subject: runId,
      evidence: expect.objectContaining({ streamsSettled: 1 }),
    });

    // The next run pays every period once: the stream the crashed run settled is not paid again.
    const settledBefore = await Promise.all(streams.map(settlementsOf));
    expect(settledBefore.map((rows) => rows.length).sort()).toEqual([0, 1]);
    const next = await runSettlement(service.db.sql, { asOf });
    expect(next.outcome).toBe('succeeded');
    const settledAfter = await Promise.all(streams.map(settlementsOf));
    for (const rows of settledAfter) expect(rows).toHaveLength(1);
    expect(
      settledAfter
        .flat()
        .map((row) => row.runId)
        .sort(),
    ).toEqual([runId, next.id].sort());

    // A person closes it once the runbook's checks are done; the detector does not.
    await detect({ streamRunStuckAfterSeconds: 3_600 });
    expect(await openFindings(service.db.sql, 'stream_run_stuck')).toHaveLength(1);
    await closeFindingByOperator(service.db.sql, {
      id: finding?.id ?? '',
      actor: 'ops',
      reason: 'payouts checked, re-run settled the rest',
    });
    expect(await openFindings(service.db.sql, 'stream_run_stuck')).toEqual([]);
  });

  it('a batch still open when its run is abandoned rolls back: nothing of it is paid, the stream stays due', async () => {
    const streamId = await dueStream();
    const asOf = await databaseNow(service.db.sql);
    const runId = await startRun(service.db.sql, asOf);
    await backdate(runId, 7_200);
    await detect({ streamRunStuckAfterSeconds: 3_600 });
    expect((await selectRun(service.db.sql, runId))?.outcome).toBe('abandoned');
    await expect(
      withTransaction(service.db.sql, (tx) => settleBatch(tx, { runId, asOf, limit: 10, skip: [] })),
    ).rejects.toThrow(/is not running/);
    expect(await settlementsOf(streamId)).toEqual([]);
    expect((await selectRun(service.db.sql, runId))?.streamsSettled).toBe(0);
    await runSettlement(service.db.sql, { asOf });
    expect(await settlementsOf(streamId)).toHaveLength(1);
  });

  it('an active stream due past its threshold is a stream_overdue finding that resolves once a run settles it', async () => {
    const streamId = await dueStream();
    // Due for an hour: not overdue under a two-hour threshold.
    await detect({ streamOverdueAfterSeconds: 7_200 });
    expect(await overdueSubjects()).not.toContain(streamId);
    await detect({ streamOverdueAfterSeconds: 600 });
    expect(await overdueSubjects()).toContain(streamId);
    const [finding] = (await openFindings(service.db.sql, 'stream_overdue')).filter(
      (f) => f.subject === streamId,
    );
    expect(finding?.evidence).toMatchObject({
      streamId,
      asset: 'XLM',
      settled: '0.0000000',
      total: '12.0000000',
    });
    expect(
      Number((finding?.evidence as { overdueSeconds?: number } | undefined)?.overdueSeconds),
    ).toBeGreaterThan(3_000);
    expect(await metric('stream_settlement_lag_seconds')).toBeGreaterThan(3_000);

    await runSettlement(service.db.sql, { asOf: await databaseNow(service.db.sql) });
    await detect({ streamOverdueAfterSeconds: 600 });
    expect(await overdueSubjects()).toEqual([]);
  });
});
