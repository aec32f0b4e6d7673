import { Asset, Keypair, Memo, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointsOf, silentLogger } from '../../test/support/payouts.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { fund, startTestNetwork, type TestNetwork } from '../sandbox/test-support.ts';
import { DepositWatcher } from './watcher.ts';
import { ensureMemo } from './watcher-data.ts';

let network: TestNetwork;
let service: TestService;
let hotWallet: Keypair;
let payer: Keypair;
let customer: string;
let memo: bigint;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 100 });
  hotWallet = await fund(network);
  payer = await fund(network);
  const endpoints = endpointsOf(network);
  service = await startTestService({
    env: {
      STELLAR_HORIZON_URLS: endpoints.horizonUrls.join(','),
      STELLAR_RPC_URL: endpoints.rpcUrl,
      STELLAR_HOT_WALLET_SECRET: hotWallet.secret(),
      STELLAR_CHANNEL_SECRETS: Keypair.random().secret(),
    },
  });
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  customer = row?.id ?? '';
  memo = await ensureMemo(service.db.sql, customer);
});

afterAll(async () => {
  await service.close();
  await network.stop();
});

/** Pays and returns the hash, whether the transaction succeeds or fails on chain. */
async function pay(destination: string, amount: string, transactionMemo: Memo): Promise<string> {
  const account = await network.horizon.loadAccount(payer.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: '100',
    networkPassphrase: network.sandbox.networkPassphrase,
    memo: transactionMemo,
  })
    .addOperation(Operation.payment({ destination, asset: Asset.native(), amount }))
    .setTimeout(30)
    .build();
  transaction.sign(payer);
  await network.horizon.submitTransaction(transaction).catch(() => undefined);
  return Buffer.from(transaction.hash()).toString('hex');
}

async function prove(transactionHash: string, amount: string, asset = 'XLM') {
  const response = await service.app.inject({
    method: 'POST',
    url: '/v1/deposits/verify-proof',
    payload: { transactionHash, accountId: customer, asset, amount },
    headers: { authorization: `Bearer ${await service.token('service')}` },
  });
  return response.json();
}

async function balance(): Promise<bigint> {
  const [row] = await service.db.sql<
    { balance: bigint }[]
  >`select balance_minor as balance from accounts where id = ${customer}::uuid`;
  return row?.balance ?? 0n;
}

describe('payment proofs', () => {
  it('credits a matching proof once, and the watcher does not credit the same payment again', async () => {
    const hash = await pay(hotWallet.publicKey(), '12', Memo.id(memo.toString()));
    expect(await prove(hash, '12')).toMatchObject({ verdict: 'credited', reason: null });
    expect(await prove(hash, '12')).toMatchObject({ verdict: 'already_credited' });
    const watcher = new DepositWatcher(service.db.sql, {
      horizonUrls: endpointsOf(network).horizonUrls,
      receivingAccount: hotWallet.publicKey(),
      logger: silentLogger,
    });
    while (await watcher.poll()) {
      // Until caught up.
    }
    expect(await balance()).toBe(120_000_000n);
  });

  it('flags each mismatch as suspicious with its reason and credits nothing', async () => {
    const before = await balance();
    const elsewhere = await fund(network);
    const cases: [() => Promise<string>, string, string, string][] = [
      [() => pay(elsewhere.publicKey(), '5', Memo.id(memo.toString())), '5', 'XLM', 'wrong_destination'],
      [() => pay(hotWallet.publicKey(), '5', Memo.id(memo.toString())), '6', 'XLM', 'wrong_amount'],
      [
        () => pay(hotWallet.publicKey(), '5', Memo.id(memo.toString())),
        '5',
        `USDC:${elsewhere.publicKey()}`,
        'wrong_asset',
      ],
      [() => pay(hotWallet.publicKey(), '5', Memo.id('999999')), '5', 'XLM', 'wrong_memo'],
      [async () => 'ab'.repeat(32), '5', 'XLM', 'not_found_on_network'],
      [() => pay(Keypair.random().publicKey(), '5', Memo.id(memo.toString())), '5', 'XLM', 'failed_on_chain'],
    ];
    for (const [hash, amount, asset, reason] of cases) {
      expect(await prove(await hash(), amount, asset), reason).toMatchObject({
        verdict: 'suspicious',
        reason,
      });
    }
    expect(await balance()).toBe(before);
    const flagged = await service.db.sql`select 1 from payment_proofs where verdict = 'suspicious'`;
    expect(flagged).toHaveLength(cases.length);
  });
});

describe('payment proofs while a Horizon lags', () => {
  it('verifies a genuine proof from the second Horizon when the first has not ingested it yet', async () => {
    const before = await balance();
    const hash = await pay(hotWallet.publicKey(), '3', Memo.id(memo.toString()));
    const lagging = network.sandbox.faults.add({ kind: 'stale_ingestion', listener: 0, lagLedgers: 64 });
    try {
      const missing = await fetch(`${network.sandbox.horizonUrls[0]}/transactions/${hash}`);
      expect(missing.status).toBe(404);
      expect(await prove(hash, '3')).toMatchObject({ verdict: 'credited', reason: null });
      expect((await balance()) - before).toBe(30_000_000n);
    } finally {
      network.sandbox.faults.remove(lagging.id);
    }
  });
});
