import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectImbalances } from '../../src/ledger/data.ts';
import { unscreenedDestination } from '../../src/payouts/destinations.ts';
import { acceptPayout } from '../../src/payouts/service.ts';
import { startTestNetwork, type TestNetwork } from '../../src/sandbox/test-support.ts';
import { ensureChannels } from '../../src/stellar/channels.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { fundFromFees } from '../support/ledger.ts';
import { endpointsOf } from '../support/payouts.ts';
import { finished, spawnCli } from '../support/process.ts';
import { seededRandom } from '../support/random.ts';
import { testEnv } from '../support/service.ts';

/**
 * Acceptance: a worker settling a few hundred payouts is killed with SIGKILL at random moments
 * while the network answers some submissions with "accepted but timed out". Afterwards every
 * payout is settled exactly once on chain, the ledger balances and payout_clearing is empty.
 */

const payoutCount = 300;
const killCount = 50;
const destinationCount = 10;
const settleTimeoutMs = 180_000;

let network: TestNetwork;
let db: TestDatabase;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 250, submissionTimeoutMs: 1_000 });
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
  await network.stop();
});

async function statesCount(): Promise<Record<string, number>> {
  const rows = await db.sql<{ state: string; count: number }[]>`
    select state, count(*)::int as count from payouts group by state`;
  return Object.fromEntries(rows.map((row) => [row.state, row.count]));
}

describe('settlement under SIGKILL', () => {
  it('settles every payout exactly once when the worker is killed at random moments', async () => {
    const endpoints = endpointsOf(network);
    const hotWallet = Keypair.random();
    const channels = Array.from({ length: 2 }, () => Keypair.random());
    await ensureChannels(endpoints, { hotWallet, channels }, ['XLM']);
    const destinations = Array.from({ length: destinationCount }, () => Keypair.random());
    await ensureChannels(
      endpoints,
      { hotWallet: destinations[0] ?? hotWallet, channels: destinations.slice(1) },
      ['XLM'],
    );

    const [customer] = await db.sql<
      { id: string }[]
    >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
    const source = customer?.id ?? '';
    await fundFromFees(db.sql, source, 100_000_000_000n);
    // Distinct amounts: each on-chain payment names the one payout it can belong to.
    const amountOf = (index: number) => `${(index + 1) / 1_000}`;
    await db.sql.begin(async (tx) => {
      for (let index = 0; index < payoutCount; index += 1) {
        const destination = destinations[index % destinationCount]?.publicKey() ?? '';
        await acceptPayout(
          tx,
          { sourceAccountId: source, destination, asset: 'XLM', amount: amountOf(index) },
          {
            name: 'crash-test',
            requestId: undefined,
          },
          unscreenedDestination,
        );
      }
    });

    const env = await testEnv(db, {
      STELLAR_HORIZON_URLS: endpoints.horizonUrls.join(','),
      STELLAR_RPC_URL: endpoints.rpcUrl,
      STELLAR_HOT_WALLET_SECRET: hotWallet.secret(),
      STELLAR_CHANNEL_SECRETS: channels.map((channel) => channel.secret()).join(','),
      // Small batches on two channels keep work in flight across all the kills.
      PAYOUT_BATCH_SIZE_MAX: '2',
      PAYOUT_WINDOW_SECONDS: '4',
      PAYOUT_WINDOW_LEDGERS: '20',
      PAYOUT_RESUBMIT_AFTER_MS: '500',
      PAYOUT_POLL_MS: '50',
      WORKER_POLL_INTERVAL_MS: '100',
      LOG_LEVEL: 'warn',
    });
    const faults = [
      network.sandbox.faults.add({
        kind: 'accepted_timeout',
        route: 'horizon.submit',
        rate: 0.2,
        mode: 'status_504',
      }),
      network.sandbox.faults.add({
        kind: 'accepted_timeout',
        route: 'horizon.submit',
        rate: 0.2,
        mode: 'drop_connection',
      }),
    ];
    const next = seededRandom(20_261_123);
    for (let kill = 0; kill < killCount; kill += 1) {
      const worker = spawnCli(['worker'], env);
      await new Promise((resolve) => setTimeout(resolve, 400 + Math.floor(next() * 1_600)));
      worker.kill('SIGKILL');
      await finished(worker, 10_000);
    }
    const progress = await statesCount();
    if (process.env.SETTLEDESK_TEST_LOG === 'debug') {
      const attempts =
        await db.sql`select state, count(*)::int, sum(submissions)::int as sends from settlement_attempts group by state`;
      process.stderr.write(
        `after ${killCount} kills: payouts ${JSON.stringify(progress)}, attempts ${JSON.stringify(attempts)}\n`,
      );
    }
    for (const fault of faults) network.sandbox.faults.remove(fault.id);

    const worker = spawnCli(['worker'], env);
    const deadline = Date.now() + settleTimeoutMs;
    while (Date.now() < deadline) {
      const states = await statesCount();
      if ((states.settled ?? 0) + (states.failed ?? 0) === payoutCount) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    worker.kill('SIGKILL');
    await finished(worker, 10_000);

    const states = await statesCount();
    expect(states, `after the kills: ${JSON.stringify(progress)}`).toEqual({ settled: payoutCount });
    // The hot wallet's payments on chain match the settled payouts one to one.
    const sent = network.sandbox.network
      .accountPayments(hotWallet.publicKey())
      .filter((payment) => payment.transactionSuccessful && payment.body.type === 'payment')
      .map((payment) => (payment.body.type === 'payment' ? payment.body.amountStroops : 0n));
    const expected = Array.from({ length: payoutCount }, (_, index) => BigInt((index + 1) * 10_000));
    expect([...sent].sort((a, b) => (a < b ? -1 : 1))).toEqual(expected);
    expect(await selectImbalances(db.sql)).toEqual([]);
    const [clearing] = await db.sql<{ balance: bigint }[]>`
      select balance_minor as balance from accounts where type = 'payout_clearing' and asset = 'XLM'`;
    expect(clearing?.balance).toBe(0n);
    const doubleLive = await db.sql`
      select payout_id from settlement_attempt_payouts ap join settlement_attempts a on a.id = ap.attempt_id
      where a.state = 'succeeded' group by payout_id having count(*) > 1`;
    expect(doubleLive).toEqual([]);
  }, 600_000);
});
