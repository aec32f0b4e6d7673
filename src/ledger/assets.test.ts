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
  it('enables an asset with its five system accounts, and is safe to re-run', async () => {
    for (let run = 0; run < 2; run += 1) {
      const result = await runCli(['--json', 'assets', 'add', usdc, '--as', 'ops'], env);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ code: usdc, added: run === 0 });
    }
    const types = await db.sql<
      { type: string }[]
    >`select type from accounts where asset = ${usdc} order by type`;
    expect(types.map((row) => row.type)).toEqual([
      'deposit_suspense',
      'escrow',
      'fees',
      'payout_clearing',
      'settlement',
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
