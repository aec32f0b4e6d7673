import { Asset, Keypair, Memo, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointsOf, silentLogger } from '../../test/support/payouts.ts';
import { waitFor } from '../../test/support/process.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import type { Worker } from '../platform/jobs.ts';
import { registry } from '../platform/metrics.ts';
import { fund, startTestNetwork, type TestNetwork } from '../sandbox/test-support.ts';
import { startJobs } from '../server.ts';
import { verifyProofTask } from './proofs.ts';
import { DepositWatcher } from './watcher.ts';
import { ensureMemo } from './watcher-data.ts';

let network: TestNetwork;
let service: TestService;
let worker: Worker;
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
      WORKER_POLL_INTERVAL_MS: '50',
    },
  });
  worker = await startJobs(service.runtime, service.domains);
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  customer = row?.id ?? '';
  memo = await ensureMemo(service.db.sql, customer);
});

afterAll(async () => {
  await worker.stop();
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
  expect(response.statusCode).toBe(response.json().verdict === 'pending' ? 202 : 200);
  return response.json();
}

async function storedVerdict(id: string) {
  const [row] = await service.db.sql<{ verdict: string; reason: string | null }[]>`
    select verdict, reason from payment_proofs where id = ${id}::uuid`;
  return row;
}

/** Waits until the job has decided the proof, and returns its verdict. */
function decided(id: string) {
  return waitFor(
    async () => {
      const row = await storedVerdict(id);
      return row?.verdict === 'pending' ? undefined : row;
    },
    60_000,
    `proof ${id} to be decided`,
  );
}

async function jobRuns(result: 'success' | 'failed'): Promise<number> {
  const values = (await registry.getSingleMetric('worker_runs_total')?.get())?.values ?? [];
  return values
    .filter((value) => value.labels.worker === verifyProofTask && value.labels.result === result)
    .reduce((sum, value) => sum + value.value, 0);
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

  it('still flags a wrong amount and a wrong destination found on the second Horizon', async () => {
    const before = await balance();
    const short = await pay(hotWallet.publicKey(), '2', Memo.id(memo.toString()));
    const elsewhere = await pay((await fund(network)).publicKey(), '2', Memo.id(memo.toString()));
    const lagging = network.sandbox.faults.add({ kind: 'stale_ingestion', listener: 0, lagLedgers: 64 });
    try {
      expect(await prove(short, '9')).toMatchObject({ verdict: 'suspicious', reason: 'wrong_amount' });
      expect(await prove(elsewhere, '2')).toMatchObject({
        verdict: 'suspicious',
        reason: 'wrong_destination',
      });
      expect(await balance()).toBe(before);
    } finally {
      network.sandbox.faults.remove(lagging.id);
    }
  });
});

describe('payment proofs no path can decide', () => {
  it('keeps a proof pending while every path is down, and the job credits it once they are back', async () => {
    const before = await balance();
    const hash = await pay(hotWallet.publicKey(), '4', Memo.id(memo.toString()));
    const failuresBefore = await jobRuns('failed');
    const { faults } = network.sandbox;
    const down = [
      faults.add({ kind: 'listener_down', listener: 0 }),
      faults.add({ kind: 'listener_down', listener: 1 }),
      faults.add({ kind: 'http_error', status: 503, route: 'rpc' }),
    ];
    let proofId: string;
    try {
      const pending = await prove(hash, '4');
      expect(pending).toMatchObject({ verdict: 'pending', reason: null, depositId: null });
      proofId = pending.id;
      const [job] = await service.db.sql<{ maxAttempts: number }[]>`
        select max_attempts as "maxAttempts" from graphile_worker.jobs where key = ${`payment-proof:${proofId}`}`;
      expect(job?.maxAttempts).toBe(10);
      // The job ran while everything was down: counted as a failure, and the proof still pending.
      await waitFor(
        async () => ((await jobRuns('failed')) > failuresBefore ? true : undefined),
        30_000,
        'the proof job to fail once',
      );
      expect(await storedVerdict(proofId)).toEqual({ verdict: 'pending', reason: null });
      expect(await balance()).toBe(before);
    } finally {
      for (const fault of down) faults.remove(fault.id);
    }
    expect(await decided(proofId)).toEqual({ verdict: 'credited', reason: null });
    expect((await balance()) - before).toBe(40_000_000n);
    expect(await jobRuns('success')).toBeGreaterThan(0);
  });

  it('keeps an unknown hash pending until a ledger closes after the proof, then flags it', async () => {
    const frozen = network.sandbox.faults.add({ kind: 'freeze_ledgers' });
    let proofId: string;
    try {
      const pending = await prove('ef'.repeat(32), '1');
      expect(pending).toMatchObject({ verdict: 'pending' });
      proofId = pending.id;
    } finally {
      network.sandbox.faults.remove(frozen.id);
    }
    expect(await decided(proofId)).toEqual({ verdict: 'suspicious', reason: 'not_found_on_network' });
  });
});
