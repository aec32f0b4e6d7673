import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { fundFromFees } from '../../test/support/ledger.ts';
import { createHold, moveFromHold } from '../escrow/service.ts';
import { postJournal } from '../ledger/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { OpenHoldsSource } from './context.ts';
import { runDetector } from './runner.ts';
import { metric, openFindings, testDeps } from './test-support.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

async function systemAccount(type: string): Promise<string> {
  const [row] = await db.sql<
    { id: string }[]
  >`select id from accounts where type = ${type} and asset = 'XLM'`;
  return row?.id ?? '';
}

async function customerAccount(): Promise<string> {
  const [row] = await db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  return row?.id ?? '';
}

/** Money moved into escrow with no hold recorded for it. */
async function moveIntoEscrow(amountMinor: bigint): Promise<void> {
  const [fees, escrow] = [await systemAccount('fees'), await systemAccount('escrow')];
  await db.sql.begin((tx) =>
    postJournal(tx, {
      kind: 'test_escrow',
      entries: [
        { accountId: fees, amountMinor: -amountMinor },
        { accountId: escrow, amountMinor },
      ],
    }),
  );
}

const holding =
  (amountMinor: bigint): OpenHoldsSource =>
  async () =>
    new Map([['XLM', amountMinor]]);

describe('escrow', () => {
  it('reports nothing while the escrow accounts are empty and there are no holds', async () => {
    const report = await runDetector(testDeps(db.sql), 'escrow');
    expect(report).toMatchObject({ outcome: 'completed', scanned: 1, findings: { created: 0 } });
    expect(await openFindings(db.sql, 'escrow_leak')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'escrow_leak' })).toBe(0);
  });

  it('finds escrow money that no open hold explains, and resolves it when the holds add up', async () => {
    const createdBefore = await metric('reconciliation_findings_total', { kind: 'escrow_leak' });
    await moveIntoEscrow(25_000_000n);
    const report = await runDetector(testDeps(db.sql), 'escrow');
    expect(report.findings.created).toBe(1);
    const [finding] = await openFindings(db.sql, 'escrow_leak');
    expect(finding).toMatchObject({
      subject: 'XLM',
      evidence: { escrowBalance: '2.5000000', openHolds: '0.0000000', difference: '2.5000000' },
    });
    expect(await metric('reconciliation_findings_total', { kind: 'escrow_leak' })).toBe(createdBefore + 1);
    expect(await metric('reconciliation_findings_open', { kind: 'escrow_leak' })).toBe(1);

    // Holds that do not cover it: still a leak, with the new figures.
    await runDetector(testDeps(db.sql, { openHolds: holding(10_000_000n) }), 'escrow');
    const [partial] = await openFindings(db.sql, 'escrow_leak');
    expect(partial).toMatchObject({ id: finding?.id, occurrences: 2, evidence: { difference: '1.5000000' } });

    const covered = await runDetector(testDeps(db.sql, { openHolds: holding(25_000_000n) }), 'escrow');
    expect(covered.findings.resolved).toBe(1);
    expect(await openFindings(db.sql, 'escrow_leak')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'escrow_leak' })).toBe(0);
  });

  it('reads the real open holds: a hold explains its escrow money, a planted entry is still a leak', async () => {
    await moveIntoEscrow(-25_000_000n); // takes back what the test above planted
    const [payer, payee] = [await customerAccount(), await customerAccount()];
    await fundFromFees(db.sql, payer, 50_000_000n);
    const actor = { name: 'test', requestId: undefined };
    const hold = await withTransaction(db.sql, (tx) =>
      createHold(tx, { payerAccountId: payer, payeeAccountId: payee, asset: 'XLM', amount: '3' }, actor),
    );
    await withTransaction(db.sql, (tx) =>
      moveFromHold(tx, { holdId: hold.id, kind: 'release', amount: '1' }, actor),
    );
    const clean = await runDetector(testDeps(db.sql), 'escrow');
    expect(clean.findings.created).toBe(0);
    expect(await openFindings(db.sql, 'escrow_leak')).toEqual([]);

    await moveIntoEscrow(5_000_000n);
    const leaked = await runDetector(testDeps(db.sql), 'escrow');
    expect(leaked.findings.created).toBe(1);
    const [finding] = await openFindings(db.sql, 'escrow_leak');
    expect(finding).toMatchObject({
      evidence: { escrowBalance: '2.5000000', openHolds: '2.0000000', difference: '0.5000000' },
    });
  });
});
