import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTransaction } from '../../src/platform/db/transaction.ts';
import { createStream } from '../../src/streams/service.ts';
import { runSettlement, startRun } from '../../src/streams/settlement.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { fundFromFees } from '../support/ledger.ts';
import { runCli } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db);
});

afterAll(async () => {
  await db.drop();
});

async function customer(): Promise<string> {
  const [row] = await db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  return row?.id ?? '';
}

/** A funded payer and a two-hour stream of `totalAmount` to a fresh account, started an hour ago. */
async function twoHourStream(totalAmount = '4') {
  const [payer, recipient] = [await customer(), await customer()];
  await fundFromFees(db.sql, payer, 100_000_000n);
  const start = Date.now() - 3_600_000;
  const stream = await withTransaction(db.sql, (tx) =>
    createStream(
      tx,
      {
        payerAccountId: payer,
        recipientAccountId: recipient,
        asset: 'XLM',
        totalAmount,
        startAt: new Date(start).toISOString(),
        endAt: new Date(start + 2 * 3_600_000).toISOString(),
        settlement: { intervalSeconds: 600 },
      },
      { name: 'cli-test', requestId: undefined },
    ),
  );
  return { payer, recipient, start, stream };
}

describe('settledesk streams', () => {
  it('lists streams by status and shows one with its settlements', async () => {
    const { payer, start, stream } = await twoHourStream();
    await runSettlement(db.sql, { asOf: new Date(start + 3_600_000) });

    const listed = await runCli(
      ['--json', 'streams', 'list', '--payer', payer, '--status', 'streaming'],
      env,
    );
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ id: stream.id, settled: '2.0000000', status: 'streaming' }),
    ]);
    const none = await runCli(['--json', 'streams', 'list', '--payer', payer, '--status', 'completed'], env);
    expect(JSON.parse(none.stdout)).toEqual([]);
    const shown = await runCli(['streams', 'show', stream.id], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('run 2.0000000 period 6');
    const bad = await runCli(['streams', 'list', '--status', 'paused'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--status must be one of');
  });

  it('lists settlement runs by state, shows one with its settlements, and settles now, safely again', async () => {
    const { recipient, stream } = await twoHourStream();
    // A run stopped midway: started, nothing settled, never finished.
    const stuck = await startRun(db.sql, new Date());
    const running = await runCli(['--json', 'streams', 'runs', '--state', 'running'], env);
    expect(running.code, running.stderr).toBe(0);
    expect(JSON.parse(running.stdout)).toEqual([
      expect.objectContaining({ id: stuck, outcome: 'running', finishedAt: null, streamsSettled: 0 }),
    ]);

    const future = await runCli(
      ['streams', 'settle', '--as-of', new Date(Date.now() + 3_600_000).toISOString()],
      env,
    );
    expect(future.code).toBe(1);
    expect(future.stderr).toContain("--as-of must not be later than the database's clock");
    const garbage = await runCli(['streams', 'settle', '--as-of', 'tomorrow'], env);
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toContain('--as-of must be an RFC 3339 instant');

    const settled = await runCli(['--json', 'streams', 'settle'], env);
    expect(settled.code, settled.stderr).toBe(0);
    const run = JSON.parse(settled.stdout);
    expect(run).toMatchObject({ outcome: 'succeeded', refused: [] });
    expect(run.streamsSettled).toBeGreaterThanOrEqual(1);
    const shown = await runCli(['--json', 'streams', 'run', run.id], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).settlements).toContainEqual(
      expect.objectContaining({ streamId: stream.id, recipient, payoutId: null, payoutState: null }),
    );
    // Again at once: nothing new has reached its next settlement time, nothing is paid twice.
    const again = JSON.parse((await runCli(['--json', 'streams', 'settle'], env)).stdout);
    expect(again).toMatchObject({ outcome: 'succeeded', streamsSettled: 0 });
    const [count] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from stream_settlements where stream_id = ${stream.id}::uuid`;
    expect(count?.n).toBe(1);

    const text = await runCli(['streams', 'runs', '--limit', '5'], env);
    expect(text.stdout).toContain(`${stuck}  running`);
    expect(text.stdout).toContain(`${run.id}  succeeded`);
    const bad = await runCli(['streams', 'runs', '--state', 'stuck'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--state must be one of running, succeeded, partial, failed, abandoned');
  });

  it('triage stuck shows a run still running past --older-than and exits 1 with --check', async () => {
    const runId = await startRun(db.sql, new Date());
    await db.sql`update stream_settlement_runs set started_at = now() - interval '1 hour' where id = ${runId}::uuid`;
    const shown = await runCli(['triage', 'stuck', '--older-than', '30m'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('stream settlement runs still running after 1800s');
    expect(shown.stdout).toMatch(new RegExp(`^${runId}\\s+running\\b`, 'm'));
    const checked = await runCli(['triage', 'stuck-settlements', '--older-than', '30m', '--check'], env);
    expect(checked.code).toBe(1);
    expect(checked.stderr).toContain('1 stream settlement runs');
    const younger = await runCli(['triage', 'stuck', '--older-than', '2h', '--check'], env);
    expect(younger.code, younger.stderr).toBe(0);
  });

  it('settles as of --as-of, pays nothing more at the same instant, and refuses an instant ahead of the clock', async () => {
    const { stream, start } = await twoHourStream('6');
    const asOf = new Date(start + 1_800_000).toISOString();
    const settled = await runCli(['--json', 'streams', 'settle', '--as-of', asOf], env);
    expect(settled.code, settled.stderr).toBe(0);
    expect(JSON.parse(settled.stdout)).toMatchObject({ outcome: 'succeeded', asOf, refused: [] });
    const again = await runCli(['streams', 'settle', '--as-of', asOf], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^[0-9a-f-]{36} {2}succeeded /);
    const ahead = await runCli(
      ['streams', 'settle', '--as-of', new Date(Date.now() + 3_600_000).toISOString()],
      env,
    );
    expect(ahead.code).toBe(1);
    expect(ahead.stderr).toContain("--as-of must not be later than the database's clock");
    const [row] = await db.sql<{ settled: bigint; count: number }[]>`
      select s.settled_minor as settled, (select count(*)::int from stream_settlements where stream_id = s.id) as count
      from streams s where s.id = ${stream.id}::uuid`;
    expect(row).toEqual({ settled: 15_000_000n, count: 1 });
    const bad = await runCli(['streams', 'settle', '--as-of', 'yesterday'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--as-of must be an RFC 3339 instant');
  });
});
