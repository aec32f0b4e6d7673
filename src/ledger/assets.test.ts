import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { runCli } from '../../test/support/process.ts';
import { testEnv } from '../../test/support/service.ts';

let db: TestDatabase;
let env: Record<string, string>;
const usdc = 'USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN';

beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db);
});

afterAll(async () => {
  await db.drop();
});

describe('settledesk assets', () => {
  it('enables an asset with its six system accounts, and is safe to re-run', async () => {
    for (let run = 0; run < 2; run += 1) {
      const result = await runCli(['--json', 'assets', 'add', usdc, '--as', 'ops'], env);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ code: usdc, added: run === 0 });
    }
    const types = await db.sql<
      { type: string }[]
    >`select type from accounts where asset = ${usdc} order by type`;
    expect(types.map((row) => row.type)).toEqual([
      'deposit_clearing',
      'deposit_suspense',
      'escrow',
      'fees',
      'payout_clearing',
      'settlement',
    ]);
    const issuers = await db.sql<{ code: string; issuer: string | null }[]>`
      select code, issuer from assets where code in ('XLM', ${usdc}) order by code`;
    expect(issuers).toEqual([
      { code: usdc, issuer: usdc.split(':')[1] },
      { code: 'XLM', issuer: null },
    ]);
    const audited =
      await db.sql`select 1 from audit_log where action = 'assets.added' and subject_id = ${usdc}`;
    expect(audited).toHaveLength(1);
  });

  it('refuses a malformed asset code', async () => {
    const result = await runCli(['assets', 'add', 'USDC:nope'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('CODE:ISSUER');
  });
});

describe('settledesk accounts show and ledger check', () => {
  it('shows an account with its balance as a decimal string', async () => {
    const [fees] = await db.sql<
      { id: string }[]
    >`select id from accounts where type = 'fees' and asset = 'XLM'`;
    const result = await runCli(['--json', 'accounts', 'show', fees?.id ?? ''], env);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ id: fees?.id, type: 'fees', balance: '0.0000000' });
  });

  it('exits 0 on a balanced ledger and 1 naming the asset once entries stop summing to zero', async () => {
    const balanced = await runCli(['ledger', 'check'], env);
    expect(balanced.code, balanced.stderr).toBe(0);
    const [fees] = await db.sql<
      { id: string }[]
    >`select id from accounts where type = 'fees' and asset = 'XLM'`;
    // Only with the deferred zero-sum trigger bypassed can an imbalance exist at all.
    await db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`insert into journal_transactions (id, kind) values ('00000000-0000-4000-8000-000000000001', 'tamper')`;
      await tx`insert into entries (journal_id, account_id, asset, amount_minor)
               values ('00000000-0000-4000-8000-000000000001', ${fees?.id ?? ''}::uuid, 'XLM', 5)`;
    });
    const broken = await runCli(['ledger', 'check'], env);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('XLM sums to 5 minor units');
  });
});
