import {
  Account,
  Asset,
  type Keypair,
  Memo,
  MuxedAccount,
  Operation,
  TransactionBuilder,
  type xdr,
} from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointsOf, silentLogger } from '../../test/support/payouts.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { registry } from '../platform/metrics.ts';
import { fund, startTestNetwork, type TestNetwork } from '../sandbox/test-support.ts';
import { DepositWatcher } from './watcher.ts';
import { ensureMemo } from './watcher-data.ts';

let network: TestNetwork;
let service: TestService;
let hotWallet: Keypair;
let sender: Keypair;
let customer: string;
let memo: bigint;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 100 });
  service = await startTestService();
  hotWallet = await fund(network);
  sender = await fund(network);
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

function watcher(): DepositWatcher {
  return new DepositWatcher(service.db.sql, {
    horizonUrls: endpointsOf(network).horizonUrls,
    receivingAccount: hotWallet.publicKey(),
    logger: silentLogger,
  });
}

async function send(source: Keypair, operation: xdr.Operation, transactionMemo: Memo = Memo.none()) {
  const account = await network.horizon.loadAccount(source.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: '100',
    networkPassphrase: network.sandbox.networkPassphrase,
    memo: transactionMemo,
  })
    .addOperation(operation)
    .setTimeout(30)
    .build();
  transaction.sign(source);
  await network.horizon.submitTransaction(transaction);
}

const pay = (amount: string, destination = hotWallet.publicKey()) =>
  Operation.payment({ destination, asset: Asset.native(), amount });

async function balanceOf(where: string): Promise<bigint> {
  const [row] = where.includes('-')
    ? await service.db.sql<
        { balance: bigint }[]
      >`select balance_minor as balance from accounts where id = ${where}::uuid`
    : await service.db.sql<
        { balance: bigint }[]
      >`select balance_minor as balance from accounts where type = ${where} and asset = 'XLM'`;
  return row?.balance ?? 0n;
}

async function drain(target: DepositWatcher): Promise<void> {
  while (await target.poll()) {
    // Each poll handles one page; an empty page means it is caught up.
  }
}

describe('the on-chain deposit watcher', () => {
  it('credits by memo and by muxed id, parks unknown memos in suspense, sets a bad record aside, and ignores outgoing payments', async () => {
    const suspenseBefore = await balanceOf('deposit_suspense');
    await send(sender, pay('10'), Memo.id(memo.toString()));
    await send(sender, pay('3'), Memo.id('424242'));
    const muxed = new MuxedAccount(new Account(hotWallet.publicKey(), '0'), memo.toString()).accountId();
    await send(sender, pay('4', muxed));
    // A payment in an asset the ledger does not hold: it cannot be credited, so it is set aside.
    const issuer = await fund(network);
    const junk = new Asset('JUNK', issuer.publicKey());
    await send(hotWallet, Operation.changeTrust({ asset: junk }));
    await send(issuer, Operation.payment({ destination: hotWallet.publicKey(), asset: junk, amount: '5' }));
    await send(hotWallet, pay('1', sender.publicKey()));
    await send(sender, pay('2'), Memo.id(memo.toString()));

    await drain(watcher());
    expect(await balanceOf(customer)).toBe(160_000_000n);
    expect((await balanceOf('deposit_suspense')) - suspenseBefore).toBe(30_000_000n);
    const rejects = await service.db.sql<{ reason: string; recordType: string }[]>`
      select reason, jsonb_typeof(record) as "recordType" from deposit_watcher_rejects`;
    expect(rejects.map((row) => row.reason)).toEqual([`asset JUNK:${issuer.publicKey()} is not enabled`]);
    expect(rejects.map((row) => row.recordType)).toEqual(['object']);
    const age = (await registry.getSingleMetric('deposit_watcher_last_ledger_age_seconds')?.get())?.values[0]
      ?.value;
    expect(age).toBeLessThan(30);
  });

  it('credits nothing twice and misses nothing when watchers restart mid-stream and race, and survives a Horizon outage', async () => {
    const before = await balanceOf(customer);
    for (let index = 0; index < 10; index += 1) await send(sender, pay('1'), Memo.id(memo.toString()));
    const down = network.sandbox.faults.add({ kind: 'listener_down', listener: 0 });
    // Two watchers race over the same records, then a restarted one replays from an old cursor.
    await Promise.all([drain(watcher()), drain(watcher())]);
    await service.db.sql`update deposit_watcher set cursor = 0`;
    await drain(watcher());
    network.sandbox.faults.remove(down.id);
    expect((await balanceOf(customer)) - before).toBe(100_000_000n);
    const duplicates = await service.db.sql`
      select reference from deposits where provider = 'stellar' group by reference having count(*) > 1`;
    expect(duplicates).toEqual([]);
  });

  it('credits what a path payment delivered, strict send or strict receive, by memo or muxed id, and parks an unattributable one', async () => {
    await drain(watcher());
    const before = await balanceOf(customer);
    const suspenseBefore = await balanceOf('deposit_suspense');
    const strictSend = (destination: string, sendAsset: Asset, sendAmount: string) =>
      Operation.pathPaymentStrictSend({
        sendAsset,
        sendAmount,
        destination,
        destAsset: Asset.native(),
        destMin: '0.0000001',
        path: [],
      });
    // Strict send in lumens with the memo: 6 XLM delivered.
    await send(sender, strictSend(hotWallet.publicKey(), Asset.native(), '6'), Memo.id(memo.toString()));
    // Strict receive of exactly 5 XLM paid in USDC (the sandbox's rate: 1 USDC = 10 XLM, so 0.5 USDC).
    const issuer = await fund(network);
    const usdc = new Asset('USDC', issuer.publicKey());
    await send(sender, Operation.changeTrust({ asset: usdc }));
    await send(issuer, Operation.payment({ destination: sender.publicKey(), asset: usdc, amount: '1' }));
    await send(
      sender,
      Operation.pathPaymentStrictReceive({
        sendAsset: usdc,
        sendMax: '0.6',
        destination: hotWallet.publicKey(),
        destAsset: Asset.native(),
        destAmount: '5',
        path: [],
      }),
      Memo.id(memo.toString()),
    );
    // Strict send to the muxed address, converted from USDC: 0.2 USDC delivers 2 XLM.
    const muxed = new MuxedAccount(new Account(hotWallet.publicKey(), '0'), memo.toString()).accountId();
    await send(sender, strictSend(muxed, usdc, '0.2'));
    // No memo: nobody to credit, so suspense.
    await send(sender, strictSend(hotWallet.publicKey(), Asset.native(), '0.7'));
    // Outgoing: the hot wallet paying someone through a path is not money in.
    await send(hotWallet, strictSend(sender.publicKey(), Asset.native(), '1'));

    await drain(watcher());
    expect((await balanceOf(customer)) - before).toBe(130_000_000n);
    expect((await balanceOf('deposit_suspense')) - suspenseBefore).toBe(7_000_000n);
  });
});
