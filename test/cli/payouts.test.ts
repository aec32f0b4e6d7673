import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transitionPayouts } from '../../src/payouts/data.ts';
import { unscreenedDestination } from '../../src/payouts/destinations.ts';
import { acceptPayout } from '../../src/payouts/service.ts';
import { startTestNetwork, type TestNetwork } from '../../src/sandbox/test-support.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { fundFromFees } from '../support/ledger.ts';
import { startPayoutHarness } from '../support/payouts.ts';
import { runCli } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

let db: TestDatabase;
let network: TestNetwork;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  network = await startTestNetwork({ ledgerCloseMs: 100 });
  env = await testEnv(db, {
    STELLAR_HORIZON_URLS: network.sandbox.horizonUrls.join(','),
    STELLAR_RPC_URL: network.sandbox.rpcUrl,
    STELLAR_HOT_WALLET_SECRET: Keypair.random().secret(),
    STELLAR_CHANNEL_SECRETS: [Keypair.random().secret(), Keypair.random().secret()].join(','),
  });
});

afterAll(async () => {
  await db.drop();
  await network.stop();
});

async function payoutInManualReview(): Promise<string> {
  const [row] = await db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  const source = row?.id ?? '';
  await fundFromFees(db.sql, source, 50_000_000n);
  return db.sql.begin(async (tx) => {
    const payout = await acceptPayout(
      tx,
      { sourceAccountId: source, destination: Keypair.random().publicKey(), asset: 'XLM', amount: '2' },
      { name: 'cli-test', requestId: undefined },
      unscreenedDestination,
    );
    await transitionPayouts(tx, [payout.id], 'attempt_built', { actor: 'test' });
    await transitionPayouts(tx, [payout.id], 'outcome_unknown', { actor: 'test', reason: 'test' });
    return payout.id;
  });
}

describe('settledesk payouts', () => {
  it('lists the manual review queue and resolves a payout only after a second admin approves', async () => {
    const id = await payoutInManualReview();
    const queue = await runCli(['--json', 'payouts', 'manual-review'], env);
    expect(queue.code, queue.stderr).toBe(0);
    expect(JSON.parse(queue.stdout).map((payout: { id: string }) => payout.id)).toEqual([id]);

    const proposed = await runCli(
      [
        '--json',
        'payouts',
        'resolve',
        id,
        '--decision',
        'refund_failed',
        '--reason',
        'not on chain',
        '--as',
        'ada',
      ],
      env,
    );
    expect(proposed.code, proposed.stderr).toBe(0);
    const proposal = JSON.parse(proposed.stdout) as { id: string; payloadHash: string };
    const shown = await runCli(['--json', 'payouts', 'show', id], env);
    expect(JSON.parse(shown.stdout).state).toBe('manual_review');

    const approved = await runCli(
      ['approvals', 'approve', proposal.id, '--hash', proposal.payloadHash, '--as', 'bob'],
      env,
    );
    expect(approved.code, approved.stderr).toBe(0);
    const after = JSON.parse((await runCli(['--json', 'payouts', 'show', id], env)).stdout);
    expect(after.state).toBe('failed');
    expect(after.history.map((entry: { toState: string }) => entry.toState)).toEqual([
      'accepted',
      'submitted',
      'manual_review',
      'failed',
    ]);
    const listed = await runCli(['payouts', 'list', '--state', 'failed'], env);
    expect(listed.stdout).toContain(id);

    const bad = await runCli(['payouts', 'resolve', id, '--decision', 'maybe', '--reason', 'x'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--decision must be confirm_sent or refund_failed');
  });
});

describe('a payout to a brand-new address', () => {
  it('is listed settled by `settledesk --json payouts list`, and Horizon shows the account created with that amount', async () => {
    const harness = await startPayoutHarness();
    try {
      const source = await harness.customer(100_000_000n);
      const fresh = Keypair.random().publicKey();
      const accepted = await harness.pay({ source, destination: fresh, amount: '2.5' });
      expect(accepted.statusCode, JSON.stringify(accepted.body)).toBe(201);
      const id = String(accepted.body.id);
      // Until it is finished either way, so a failure shows as its state, not as a timeout.
      await harness.settleUntil(async () =>
        ['settled', 'failed'].includes((await harness.states([id]))[id] ?? ''),
      );
      const listed = await runCli(['--json', 'payouts', 'list'], await testEnv(harness.service.db));
      expect(listed.code, listed.stderr).toBe(0);
      const payouts = JSON.parse(listed.stdout) as {
        id: string;
        destination: string;
        state: string;
        amount: string;
      }[];
      expect(payouts.find((payout) => payout.id === id)).toMatchObject({
        destination: fresh,
        state: 'settled',
        amount: '2.5000000',
      });
      const account = await fetch(`${harness.endpoints.horizonUrls[0]}/accounts/${fresh}`);
      expect(account.status).toBe(200);
      const { balances } = (await account.json()) as { balances: { asset_type: string; balance: string }[] };
      expect(balances).toEqual([expect.objectContaining({ asset_type: 'native', balance: '2.5000000' })]);
      const created = await fetch(`${harness.endpoints.horizonUrls[0]}/accounts/${fresh}/payments`);
      const { _embedded } = (await created.json()) as {
        _embedded: { records: { type: string; funder: string; starting_balance: string }[] };
      };
      expect(_embedded.records).toEqual([
        expect.objectContaining({
          type: 'create_account',
          funder: harness.wallet.hotWallet.publicKey(),
          starting_balance: '2.5000000',
        }),
      ]);
    } finally {
      await harness.close();
    }
  });
});

describe('settledesk channels', () => {
  it('reports missing accounts, creates them once, and verifies them', async () => {
    const before = await runCli(['channels', 'verify'], env);
    expect(before.code).toBe(1);
    expect(before.stderr + before.stdout).toContain('does not exist on chain');
    const ensured = await runCli(['--json', 'channels', 'ensure'], env);
    expect(ensured.code, ensured.stderr).toBe(0);
    expect(JSON.parse(ensured.stdout).every((report: { exists: boolean }) => report.exists)).toBe(true);
    const again = await runCli(['--json', 'channels', 'ensure'], env);
    expect(JSON.parse(again.stdout).map((report: { sequence: string }) => report.sequence)).toEqual(
      JSON.parse(ensured.stdout).map((report: { sequence: string }) => report.sequence),
    );
    const verified = await runCli(['channels', 'verify'], env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('all accounts ready');
  });
});
