import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { fundFromFees } from '../../test/support/ledger.ts';
import { postJournal } from '../ledger/service.ts';
import type { Sql } from '../platform/db/types.ts';
import { runDetector } from './runner.ts';
import { metric, openFindings, testDeps } from './test-support.ts';

let db: TestDatabase;
let fees: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const [row] = await db.sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = 'XLM'`;
  fees = row?.id ?? '';
});

afterAll(async () => {
  await db.drop();
});

async function customer(sql: Sql): Promise<string> {
  const [row] = await sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  return row?.id ?? '';
}

/** One entry with no counterpart, written past the ledger's triggers as a superuser can. */
async function writeUnbalancedEntry(sql: Sql, accountId: string, amountMinor: bigint): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    const journalId = randomUUID();
    await tx`insert into journal_transactions (id, kind) values (${journalId}::uuid, 'test_corruption')`;
    await tx`
      insert into entries (journal_id, account_id, asset, amount_minor)
      values (${journalId}::uuid, ${accountId}::uuid, 'XLM', ${amountMinor}::int8)`;
  });
}

describe('ledger_balance', () => {
  it('reports nothing on a ledger whose assets all sum to zero', async () => {
    const alice = await customer(db.sql);
    const bob = await customer(db.sql);
    await fundFromFees(db.sql, alice, 50_000_000n);
    await db.sql.begin((tx) =>
      postJournal(tx, {
        kind: 'transfer',
        entries: [
          { accountId: alice, amountMinor: -20_000_000n },
          { accountId: bob, amountMinor: 20_000_000n },
        ],
      }),
    );
    const before = await metric('ledger_imbalance_total', { currency: 'XLM' });
    const report = await runDetector(testDeps(db.sql), 'ledger_balance');
    expect(report).toMatchObject({ outcome: 'completed', scanned: 4, findings: { created: 0, seen: 0 } });
    expect(await openFindings(db.sql, 'ledger_imbalance')).toEqual([]);
    expect(await metric('ledger_imbalance_total', { currency: 'XLM' })).toBe(before);
    expect(await metric('reconciliation_findings_open', { kind: 'ledger_imbalance' })).toBe(0);
    expect(
      await metric('reconciliation_last_success_timestamp_seconds', { detector: 'ledger_balance' }),
    ).toBeGreaterThan(Date.now() / 1_000 - 60);
  });

  it('finds an imbalance written with the triggers disabled, counts it every run, and resolves it once corrected', async () => {
    const imbalancesBefore = await metric('ledger_imbalance_total', { currency: 'XLM' });
    const createdBefore = await metric('reconciliation_findings_total', { kind: 'ledger_imbalance' });
    await writeUnbalancedEntry(db.sql, fees, 5n);

    const first = await runDetector(testDeps(db.sql), 'ledger_balance');
    expect(first.findings.created).toBe(1);
    const [finding] = await openFindings(db.sql, 'ledger_imbalance');
    expect(finding).toMatchObject({
      subject: 'XLM',
      evidence: { asset: 'XLM', sum: '0.0000005' },
      occurrences: 1,
    });
    expect(await metric('ledger_imbalance_total', { currency: 'XLM' })).toBe(imbalancesBefore + 1);
    expect(await metric('reconciliation_findings_total', { kind: 'ledger_imbalance' })).toBe(
      createdBefore + 1,
    );
    expect(await metric('reconciliation_findings_open', { kind: 'ledger_imbalance' })).toBe(1);

    // Still there on the next run: the same finding, seen again; the counter keeps the alert firing.
    await runDetector(testDeps(db.sql), 'ledger_balance');
    const [again] = await openFindings(db.sql, 'ledger_imbalance');
    expect(again).toMatchObject({ id: finding?.id, occurrences: 2 });
    expect(await metric('ledger_imbalance_total', { currency: 'XLM' })).toBe(imbalancesBefore + 2);
    expect(await metric('reconciliation_findings_total', { kind: 'ledger_imbalance' })).toBe(
      createdBefore + 1,
    );

    await writeUnbalancedEntry(db.sql, fees, -5n);
    const corrected = await runDetector(testDeps(db.sql), 'ledger_balance');
    expect(corrected.findings.resolved).toBe(1);
    expect(await openFindings(db.sql, 'ledger_imbalance')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'ledger_imbalance' })).toBe(0);
    expect(await metric('ledger_imbalance_total', { currency: 'XLM' })).toBe(imbalancesBefore + 2);
  });

  it('rebuilds the same totals from the beginning with a full run', async () => {
    await writeUnbalancedEntry(db.sql, fees, 3n);
    const full = await runDetector(testDeps(db.sql), 'ledger_balance', { full: true });
    expect(full.outcome).toBe('completed');
    const [entries] = await db.sql<{ count: number }[]>`select count(*)::int as count from entries`;
    expect(full.scanned).toBe(entries?.count);
    const [finding] = await openFindings(db.sql, 'ledger_imbalance');
    expect(finding?.evidence).toMatchObject({ sum: '0.0000003' });
    await writeUnbalancedEntry(db.sql, fees, -3n);
    await runDetector(testDeps(db.sql), 'ledger_balance');
    expect(await openFindings(db.sql, 'ledger_imbalance')).toEqual([]);
  });
});
