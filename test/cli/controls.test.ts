import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
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

async function cli(args: string[]): Promise<Record<string, unknown>> {
  const result = await runCli(['--json', ...args], env);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

describe('settledesk mode and approvals from the command line', () => {
  it('freezes with one person and unfreezes only after a second person approves the exact proposal', async () => {
    expect(await cli(['mode', 'freeze', '--reason', 'drill', '--as', 'olga'])).toMatchObject({
      payoutsFrozen: true,
    });
    const proposal = await cli(['mode', 'unfreeze', '--reason', 'drill over', '--as', 'ada']);
    expect(proposal).toMatchObject({ action: 'controls.unfreeze_payouts', state: 'pending' });
    const listed = (await cli(['approvals', 'list'])) as unknown as { id: string }[];
    expect(listed.map((row) => row.id)).toContain(proposal.id);

    const self = await runCli(
      ['approvals', 'approve', String(proposal.id), '--hash', String(proposal.payloadHash), '--as', 'ada'],
      env,
    );
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('approvals/self-approval');
    expect(await cli(['mode', 'show'])).toMatchObject({ payoutsFrozen: true });

    const approved = await cli([
      'approvals',
      'approve',
      String(proposal.id),
      '--hash',
      String(proposal.payloadHash),
      '--as',
      'bob',
    ]);
    expect(approved).toMatchObject({ state: 'executed' });
    expect(await cli(['mode', 'show'])).toMatchObject({ payoutsFrozen: false });
  });

  it('makes a rejection from the command line final', async () => {
    await cli(['mode', 'read-only', '--reason', 'drill', '--as', 'olga']);
    const proposal = await cli(['mode', 'standard', '--reason', 'too early', '--as', 'ada']);
    expect(
      await cli(['approvals', 'reject', String(proposal.id), '--reason', 'not yet', '--as', 'bob']),
    ).toMatchObject({
      state: 'rejected',
    });
    const late = await runCli(
      ['approvals', 'approve', String(proposal.id), '--hash', String(proposal.payloadHash), '--as', 'cy'],
      env,
    );
    expect(late.code).toBe(1);
    expect(late.stderr).toContain('approvals/not-pending');
    expect(await cli(['mode', 'show'])).toMatchObject({ paymentsMode: 'read_only' });
  });
});
