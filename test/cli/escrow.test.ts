import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHold, openDispute } from '../../src/escrow/service.ts';
import { withTransaction } from '../../src/platform/db/transaction.ts';
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

describe('settledesk escrow', () => {
  it('lists and shows holds, and resolves a dispute only after a second admin approves', async () => {
    const [payer, payee] = [await customer(), await customer()];
    await fundFromFees(db.sql, payer, 100_000_000n);
    const actor = { name: 'cli-test', requestId: undefined };
    const hold = await withTransaction(db.sql, (tx) =>
      createHold(tx, { payerAccountId: payer, payeeAccountId: payee, asset: 'XLM', amount: '4' }, actor),
    );
    await withTransaction(db.sql, (tx) =>
      openDispute(tx, { holdId: hold.id, reason: 'not delivered', evidenceRefs: [] }, actor),
    );

    const listed = await runCli(
      ['--json', 'escrow', 'holds', 'list', '--payer', payer, '--state', 'disputed'],
      env,
    );
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).map((row: { id: string }) => row.id)).toEqual([hold.id]);
    const open = await runCli(['--json', 'escrow', 'disputes', 'list', '--state', 'open'], env);
    expect(open.code, open.stderr).toBe(0);
    expect(JSON.parse(open.stdout)).toEqual([
      expect.objectContaining({ holdId: hold.id, state: 'open', reason: 'not delivered', outcome: null }),
    ]);
    const human = await runCli(['escrow', 'holds', 'show', hold.id], env);
    expect(human.stdout).toContain('dispute');
    expect(human.stdout).toContain('not delivered');

    const proposed = await runCli(
      [
        '--json',
        'escrow',
        'resolve',
        hold.id,
        '--outcome',
        'refund',
        '--reason',
        'never shipped',
        '--as',
        'ada',
      ],
      env,
    );
    expect(proposed.code, proposed.stderr).toBe(0);
    const proposal = JSON.parse(proposed.stdout) as { id: string; payloadHash: string };
    expect(JSON.parse((await runCli(['--json', 'escrow', 'holds', 'show', hold.id], env)).stdout).state).toBe(
      'disputed',
    );
    const self = await runCli(
      ['approvals', 'approve', proposal.id, '--hash', proposal.payloadHash, '--as', 'ada'],
      env,
    );
    expect(self.code).toBe(1);
    const approved = await runCli(
      ['approvals', 'approve', proposal.id, '--hash', proposal.payloadHash, '--as', 'bob'],
      env,
    );
    expect(approved.code, approved.stderr).toBe(0);
    const after = JSON.parse((await runCli(['--json', 'escrow', 'holds', 'show', hold.id], env)).stdout);
    expect(after).toMatchObject({ state: 'closed', refunded: '4.0000000', dispute: { outcome: 'refund' } });
    const [balance] = await db.sql<{ balance: bigint }[]>`
      select balance_minor as balance from accounts where id = ${payer}::uuid`;
    expect(balance?.balance).toBe(100_000_000n);

    const resolved = await runCli(['escrow', 'disputes', 'list', '--state', 'resolved'], env);
    expect(resolved.stdout).toContain(`hold ${hold.id}`);
    expect(resolved.stdout).toContain('→ refund');
    const none = await runCli(['--json', 'escrow', 'disputes', 'list', '--state', 'open'], env);
    expect(JSON.parse(none.stdout)).toEqual([]);
    const badDispute = await runCli(['escrow', 'disputes', 'list', '--state', 'held'], env);
    expect(badDispute.code).toBe(1);
    expect(badDispute.stderr).toContain('--state must be one of open, resolved');

    const bad = await runCli(['escrow', 'holds', 'list', '--state', 'open'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--state must be one of');
  });
});
