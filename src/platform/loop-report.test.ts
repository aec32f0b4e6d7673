import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { deleteSilentLoops, selectLoops, selectSilentProcesses, upsertLoops } from './loop-report.ts';

/** What a process writes into worker_loops, and what triage reads back, on real PostgreSQL. */

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

const payout = (ageSeconds: number) => ({
  worker: 'payout',
  intervalSeconds: 1,
  staleAfterSeconds: 180,
  ageSeconds,
});

describe('worker_loops', () => {
  it('keeps one row per process and loop, dated by the database from the age each report sends', async () => {
    await db.sql`delete from worker_loops`;
    await upsertLoops(db.sql, 'worker@a:1:x', 10, [payout(400), { ...payout(5), worker: 'deposit_watcher' }]);
    await upsertLoops(db.sql, 'worker@a:1:x', 10, [payout(2)]);
    await upsertLoops(db.sql, 'worker@b:2:y', 10, [payout(300)]);
    const rows = await selectLoops(db.sql, 10);
    expect(rows.map((row) => [row.worker, row.processCount])).toEqual([
      ['deposit_watcher', 1],
      ['payout', 2],
    ]);
    const row = rows.find((loop) => loop.worker === 'payout');
    // The newest success across processes: a's second report (2 s), not b's 300 s.
    expect(row?.ageSeconds).toBeLessThan(60);
    expect(row?.ageSeconds).toBeGreaterThan(1);
    expect(row?.staleAfterSeconds).toBe(180);
    expect((await selectSilentProcesses(db.sql, 10)).map((process) => process.processId)).toEqual([]);
  });

  it('names a process silent after three missed reports', async () => {
    await db.sql`update worker_loops set reported_at = now() - interval '31 seconds' where process_id = 'worker@b:2:y'`;
    const silent = await selectSilentProcesses(db.sql, 10);
    expect(silent.map((process) => process.processId)).toEqual(['worker@b:2:y']);
    expect(silent[0]?.silentSeconds).toBeGreaterThan(30);
  });

  it('deletes rows of processes silent for longer than asked, at most `limit` per call, oldest first', async () => {
    await db.sql`delete from worker_loops`;
    for (const [index, worker] of ['a', 'b', 'c'].entries()) {
      await upsertLoops(db.sql, `worker@old:${index}:z`, 10, [{ ...payout(1), worker }]);
    }
    await upsertLoops(db.sql, 'worker@new:9:z', 10, [payout(1)]);
    await db.sql`
      update worker_loops set reported_at = now() - make_interval(days => 2, secs => split_part(process_id, ':', 2)::int)
      where process_id like 'worker@old:%'`;
    expect(await deleteSilentLoops(db.sql, 86_400, 2)).toBe(2);
    const left = await db.sql<{ processId: string }[]>`
      select process_id as "processId" from worker_loops order by process_id`;
    expect(left.map((row) => row.processId)).toEqual(['worker@new:9:z', 'worker@old:0:z']);
    expect(await deleteSilentLoops(db.sql, 86_400, 2)).toBe(1);
    expect(await deleteSilentLoops(db.sql, 86_400, 2)).toBe(0);
  });
});
