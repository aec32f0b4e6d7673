import { randomUUID } from 'node:crypto';
import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { runDetector } from './runner.ts';
import { metric, openFindings, testDeps } from './test-support.ts';

let db: TestDatabase;
let source: string;
let journal: string;
const destination = Keypair.random().publicKey();

beforeAll(async () => {
  db = await createTestDatabase();
  const [account] = await db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  source = account?.id ?? '';
  journal = randomUUID();
  await db.sql`insert into journal_transactions (id, kind) values (${journal}::uuid, 'test_payouts')`;
});

afterAll(async () => {
  await db.drop();
});

/** A payout row as the caller's history: `xlm` whole XLM, created `hoursAgo` hours ago. */
async function payout(caller: string, xlm: number, hoursAgo: number, state = 'accepted'): Promise<void> {
  await db.sql`
    insert into payouts (id, source_account_id, asset, amount_minor, destination, memo_type, state, state_reason,
                         created_by, accept_journal_id, final_journal_id, created_at)
    values (${randomUUID()}::uuid, ${source}::uuid, 'XLM', ${BigInt(xlm) * 10_000_000n}::int8, ${destination}::text,
            'none', ${state}::text, 'test', ${caller}::text, ${journal}::uuid,
            ${state === 'cancelled' ? journal : null}::uuid, now() - make_interval(hours => ${hoursAgo}::int))`;
}

/** Ten XLM a day for the seven days before the last 24 h. */
async function steadyHistory(caller: string): Promise<void> {
  for (let day = 1; day <= 7; day += 1) await payout(caller, 10, day * 24 + 2);
}

async function subjects(): Promise<string[]> {
  return (await openFindings(db.sql, 'unusual_payout_volume')).map((finding) => finding.subject).sort();
}

describe('payout_volume', () => {
  it('flags a caller paying out more than the factor times its trailing daily average, and no other', async () => {
    await steadyHistory('steady-app');
    await payout('steady-app', 20, 1);
    await steadyHistory('drained-app');
    await payout('drained-app', 30, 3);
    await payout('drained-app', 30, 1);
    await steadyHistory('cancelled-app');
    await payout('cancelled-app', 100, 1, 'cancelled');
    await payout('new-app', 1_000, 1);
    const created = await metric('reconciliation_findings_total', { kind: 'unusual_payout_volume' });

    await runDetector(testDeps(db.sql), 'payout_volume');
    expect(await subjects()).toEqual(['drained-app XLM']);
    const [finding] = await openFindings(db.sql, 'unusual_payout_volume');
    expect(finding?.evidence).toMatchObject({
      caller: 'drained-app',
      last24h: '60.0000000',
      payoutsLast24h: 2,
      dailyAverageBefore: '10.0000000',
      why: 'more than 5× its daily average of the 7 days before',
    });
    expect(await metric('reconciliation_findings_total', { kind: 'unusual_payout_volume' })).toBe(
      created + 1,
    );
    expect(await metric('reconciliation_findings_open', { kind: 'unusual_payout_volume' })).toBe(1);

    await runDetector(testDeps(db.sql), 'payout_volume');
    const [again] = await openFindings(db.sql, 'unusual_payout_volume');
    expect(again?.occurrences).toBe(2);
  });

  it('flags a caller without history only above the configured daily total', async () => {
    const settings = { payoutVolumeDailyTotals: new Map([['XLM', '500']]) };
    await runDetector(testDeps(db.sql, { settings }), 'payout_volume');
    expect(await subjects()).toEqual(['drained-app XLM', 'new-app XLM']);
    const found = await openFindings(db.sql, 'unusual_payout_volume');
    expect(found.find((finding) => finding.subject === 'new-app XLM')?.evidence).toMatchObject({
      last24h: '1000.0000000',
      why: 'above the daily total of 500 XLM',
    });
  });
});
