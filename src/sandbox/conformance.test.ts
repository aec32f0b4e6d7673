import {
  Account,
  Asset,
  BadResponseError,
  type Horizon,
  Keypair,
  Memo,
  MuxedAccount,
  NotFoundError,
  Operation,
  rpc,
  type Transaction,
  TransactionBuilder,
  TransactionFailedError,
  xdr,
} from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assert } from '../platform/assert.ts';
import {
  fund,
  paymentTransaction,
  resultCodesOf,
  startTestNetwork,
  type TestNetwork,
} from './test-support.ts';

/** The official SDK, unmodified, against the sandbox: everything settledesk relies on. */

let network: TestNetwork;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 100 });
});

afterAll(async () => {
  await network.stop();
});

async function nativeBalance(accountId: string): Promise<string> {
  const account = await network.horizon.loadAccount(accountId);
  return account.balances.find((balance) => balance.asset_type === 'native')?.balance ?? '';
}

async function failureOf(promise: Promise<unknown>): Promise<TransactionFailedError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(TransactionFailedError);
  return error as TransactionFailedError;
}

/** A one-lumen payment, built but not signed. */
function payOne(start: TransactionBuilder, destination: string) {
  return start
    .addOperation(Operation.payment({ destination, asset: Asset.native(), amount: '1' }))
    .setTimeout(60)
    .build();
}

function builder(account: Account | Horizon.AccountResponse, fee = '100') {
  return new TransactionBuilder(account, { fee, networkPassphrase: network.sandbox.networkPassphrase });
}

describe('accounts and submission', () => {
  it('loads a friendbot-funded account with string amounts and sequence', async () => {
    const keypair = await fund(network);
    const account = await network.horizon.loadAccount(keypair.publicKey());
    expect(account.accountId()).toBe(keypair.publicKey());
    expect(account.sequence).toMatch(/^\d+$/);
    expect(account.balances).toEqual([
      expect.objectContaining({ asset_type: 'native', balance: '10000.0000000' }),
    ]);
  });

  it('answers an unknown account with the SDK NotFoundError', async () => {
    await expect(network.horizon.loadAccount(Keypair.random().publicKey())).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('applies a payment, charges the base fee and returns decodable result XDR', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const transaction = await paymentTransaction(network, source, target.publicKey(), '12.5');
    const response = await network.horizon.submitTransaction(transaction);
    expect(response.successful).toBe(true);
    expect(response.hash).toBe(Buffer.from(transaction.hash()).toString('hex'));
    const result = xdr.TransactionResult.fromXdr(response.result_xdr, 'base64');
    expect(result.result.type).toBe('txSuccess');
    expect(result.feeCharged).toBe(100n);
    expect(await nativeBalance(source.publicKey())).toBe('9987.4999900');
    expect(await nativeBalance(target.publicKey())).toBe('10012.5000000');
    const fetched = await network.horizon.transactions().transaction(response.hash).call();
    // The SDK turns `_links.ledger` into a function and keeps the number as `ledger_attr`.
    expect(fetched).toMatchObject({
      hash: response.hash,
      ledger_attr: response.ledger,
      fee_charged: '100',
      successful: true,
    });
  });

  it('returns the stored result when a known envelope is submitted again', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const transaction = await paymentTransaction(network, source, target.publicKey(), '1');
    const first = await network.horizon.submitTransaction(transaction);
    const second = await network.horizon.submitTransaction(transaction);
    expect(second).toMatchObject({ hash: first.hash, ledger: first.ledger });
    expect(await nativeBalance(target.publicKey())).toBe('10001.0000000');
  });

  it('carries every memo type and muxed destinations through to Horizon', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const muxed = new MuxedAccount(new Account(target.publicKey(), '0'), '42');
    const hash = 'ab'.repeat(32);
    const memos = [
      Memo.text('invoice 7'),
      Memo.id('18446744073709551615'),
      Memo.hash(hash),
      Memo.return(hash),
    ];
    const expected = [
      { memo_type: 'text', memo: 'invoice 7' },
      { memo_type: 'id', memo: '18446744073709551615' },
      { memo_type: 'hash', memo: Buffer.from(hash, 'hex').toString('base64') },
      { memo_type: 'return', memo: Buffer.from(hash, 'hex').toString('base64') },
    ];
    for (const [index, memo] of memos.entries()) {
      const account = await network.horizon.loadAccount(source.publicKey());
      const transaction = builder(account)
        .addOperation(
          Operation.payment({ destination: muxed.accountId(), asset: Asset.native(), amount: '1' }),
        )
        .addMemo(memo)
        .setTimeout(60)
        .build();
      transaction.sign(source);
      const response = await network.horizon.submitTransaction(transaction);
      const fetched = await network.horizon.transactions().transaction(response.hash).call();
      expect(fetched).toMatchObject(expected[index] ?? {});
    }
    const page = await network.horizon
      .payments()
      .forAccount(target.publicKey())
      .order('desc')
      .limit(1)
      .call();
    expect(page.records[0]).toMatchObject({
      to: target.publicKey(),
      to_muxed: muxed.accountId(),
      to_muxed_id: '42',
    });
  });
});

describe('submission failures', () => {
  it('refuses a wrong sequence number with tx_bad_seq and charges nothing', async () => {
    const source = await fund(network);
    const stale = new Account(source.publicKey(), '5');
    const transaction = payOne(builder(stale), source.publicKey());
    transaction.sign(source);
    const error = await failureOf(network.horizon.submitTransaction(transaction));
    expect(error.getResultCodes()).toEqual({ transaction: 'tx_bad_seq', operations: [] });
    expect(await nativeBalance(source.publicKey())).toBe('10000.0000000');
  });

  it('refuses a transaction signed by the wrong key with tx_bad_auth', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const account = await network.horizon.loadAccount(source.publicKey());
    const transaction = payOne(builder(account), target.publicKey());
    transaction.sign(Keypair.random());
    const error = await failureOf(network.horizon.submitTransaction(transaction));
    expect(error.getResultCodes().transaction).toBe('tx_bad_auth');
  });

  it('refuses a transaction signed for another network with tx_bad_auth', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const account = await network.horizon.loadAccount(source.publicKey());
    const otherNetwork = { fee: '100', networkPassphrase: 'Test SDF Network ; September 2015' };
    const transaction = payOne(new TransactionBuilder(account, otherNetwork), target.publicKey());
    transaction.sign(source);
    const error = await failureOf(network.horizon.submitTransaction(transaction));
    expect(error.getResultCodes().transaction).toBe('tx_bad_auth');
  });

  it('refuses transactions outside their time bounds with tx_too_late and tx_too_early', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const now = Math.floor(Date.now() / 1_000);
    for (const [timebounds, code] of [
      [{ minTime: 0, maxTime: now - 60 }, 'tx_too_late'],
      [{ minTime: now + 3_600, maxTime: now + 7_200 }, 'tx_too_early'],
    ] as const) {
      const account = await network.horizon.loadAccount(source.publicKey());
      const transaction = new TransactionBuilder(account, {
        fee: '100',
        networkPassphrase: network.sandbox.networkPassphrase,
        timebounds,
      })
        .addOperation(
          Operation.payment({ destination: target.publicKey(), asset: Asset.native(), amount: '1' }),
        )
        .build();
      transaction.sign(source);
      const error = await failureOf(network.horizon.submitTransaction(transaction));
      expect(error.getResultCodes().transaction).toBe(code);
    }
  });

  it('refuses a fee below the base fee with tx_insufficient_fee', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const transaction = await paymentTransaction(network, source, target.publicKey(), '1', { fee: '99' });
    const error = await failureOf(network.horizon.submitTransaction(transaction));
    expect(error.getResultCodes().transaction).toBe('tx_insufficient_fee');
  });

  it('refuses a fee the source cannot pay above its reserve with tx_insufficient_balance', async () => {
    const funder = await fund(network);
    const poor = Keypair.random();
    const account = await network.horizon.loadAccount(funder.publicKey());
    const create = builder(account)
      .addOperation(Operation.createAccount({ destination: poor.publicKey(), startingBalance: '1.5' }))
      .setTimeout(60)
      .build();
    create.sign(funder);
    await network.horizon.submitTransaction(create);
    const transaction = await paymentTransaction(network, poor, funder.publicKey(), '0.1', {
      fee: '6000000',
    });
    const error = await failureOf(network.horizon.submitTransaction(transaction));
    expect(error.getResultCodes().transaction).toBe('tx_insufficient_balance');
  });

  it('fails operations at apply time while still consuming the fee and the sequence number', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const cases = [
      [target.publicKey(), '20000', 'op_underfunded'],
      [Keypair.random().publicKey(), '1', 'op_no_destination'],
    ] as const;
    for (const [destination, amount, code] of cases) {
      const before = await network.horizon.loadAccount(source.publicKey());
      const transaction = await paymentTransaction(network, source, destination, amount);
      const error = await failureOf(network.horizon.submitTransaction(transaction));
      expect(error.getResultCodes()).toEqual({ transaction: 'tx_failed', operations: [code] });
      expect(error.getTransactionResult()?.feeCharged).toBe(100n);
      const after = await network.horizon.loadAccount(source.publicKey());
      expect(BigInt(after.sequence)).toBe(BigInt(before.sequence) + 1n);
    }
    expect(await nativeBalance(source.publicKey())).toBe('9999.9999800');
  });

  it('creates an account, and fails a creation with op_already_exists and op_low_reserve', async () => {
    const [funder, existing] = await Promise.all([fund(network), fund(network)]);
    const create = async (destination: string, startingBalance: string) => {
      const account = await network.horizon.loadAccount(funder.publicKey());
      const transaction = builder(account)
        .addOperation(Operation.createAccount({ destination, startingBalance }))
        .setTimeout(60)
        .build();
      transaction.sign(funder);
      return network.horizon.submitTransaction(transaction);
    };
    const fresh = Keypair.random().publicKey();
    await create(fresh, '1');
    expect(await nativeBalance(fresh)).toBe('1.0000000');
    const cases = [
      [existing.publicKey(), '5', 'op_already_exists'],
      [Keypair.random().publicKey(), '0.9999999', 'op_low_reserve'],
    ] as const;
    for (const [destination, startingBalance, code] of cases) {
      const error = await failureOf(create(destination, startingBalance));
      expect(error.getResultCodes()).toEqual({ transaction: 'tx_failed', operations: [code] });
    }
    expect(await nativeBalance(existing.publicKey())).toBe('10000.0000000');
  });

  it('refuses a malformed operation with op_malformed', async () => {
    const source = await fund(network);
    const account = await network.horizon.loadAccount(source.publicKey());
    const transaction = builder(account)
      .addOperation(Operation.createAccount({ destination: source.publicKey(), startingBalance: '5' }))
      .setTimeout(60)
      .build();
    transaction.sign(source);
    const error = await failureOf(network.horizon.submitTransaction(transaction));
    expect(error.getResultCodes()).toEqual({ transaction: 'tx_failed', operations: ['op_malformed'] });
  });
});

describe('credit assets', () => {
  it('pays a credit asset over a trustline and reports op_no_trust and op_line_full', async () => {
    const [issuer, holder, stranger] = await Promise.all([fund(network), fund(network), fund(network)]);
    const usd = new Asset('USD', issuer.publicKey());
    const holderAccount = await network.horizon.loadAccount(holder.publicKey());
    const trust = builder(holderAccount)
      .addOperation(Operation.changeTrust({ asset: usd, limit: '10' }))
      .setTimeout(60)
      .build();
    trust.sign(holder);
    await network.horizon.submitTransaction(trust);
    const pay = async (destination: string, amount: string) => {
      const account = await network.horizon.loadAccount(issuer.publicKey());
      const transaction = builder(account)
        .addOperation(Operation.payment({ destination, asset: usd, amount }))
        .setTimeout(60)
        .build();
      transaction.sign(issuer);
      return network.horizon.submitTransaction(transaction);
    };
    await pay(holder.publicKey(), '7');
    const loaded = await network.horizon.loadAccount(holder.publicKey());
    expect(loaded.balances).toContainEqual(
      expect.objectContaining({
        asset_code: 'USD',
        asset_issuer: issuer.publicKey(),
        balance: '7.0000000',
        limit: '10.0000000',
      }),
    );
    const noTrust = await failureOf(pay(stranger.publicKey(), '1'));
    expect(noTrust.getResultCodes().operations).toEqual(['op_no_trust']);
    const full = await failureOf(pay(holder.publicKey(), '3.0000001'));
    expect(full.getResultCodes().operations).toEqual(['op_line_full']);
  });
});

describe('path payments', () => {
  /** Submits one operation from `source`; resolves with the SDK's response, rejects with its error. */
  async function submitOne(source: Keypair, operation: xdr.Operation, memo: Memo = Memo.none()) {
    const account = await network.horizon.loadAccount(source.publicKey());
    const transaction = builder(account).addOperation(operation).addMemo(memo).setTimeout(60).build();
    transaction.sign(source);
    return network.horizon.submitTransaction(transaction);
  }

  async function trust(holder: Keypair, asset: Asset, limit = '1000') {
    await submitOne(holder, Operation.changeTrust({ asset, limit }));
  }

  async function balanceOf(accountId: string, asset: Asset): Promise<string | undefined> {
    const account = await network.horizon.loadAccount(accountId);
    const line = account.balances.find((balance) =>
      asset.isNative()
        ? balance.asset_type === 'native'
        : 'asset_code' in balance &&
          balance.asset_code === asset.getCode() &&
          balance.asset_issuer === asset.getIssuer(),
    );
    return line?.balance;
  }

  async function lastPaymentOf(accountId: string) {
    const page = await network.horizon
      .payments()
      .forAccount(accountId)
      .order('desc')
      .limit(1)
      .join('transactions')
      .call();
    return page.records[0];
  }

  it("sends a strict-send path payment in one asset with no hops and lists it with Horizon's fields", async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const muxed = new MuxedAccount(new Account(target.publicKey(), '0'), '7');
    const response = await submitOne(
      source,
      Operation.pathPaymentStrictSend({
        sendAsset: Asset.native(),
        sendAmount: '12.5',
        destination: muxed.accountId(),
        destAsset: Asset.native(),
        destMin: '12.5',
        path: [],
      }),
      Memo.id('99'),
    );
    const result = xdr.TransactionResult.fromXdr(response.result_xdr, 'base64').toXdrObject();
    expect(result.result).toMatchObject({
      code: 0,
      results: [
        {
          code: 0,
          tr: { type: 13, pathPaymentStrictSendResult: { code: 0, success: { offers: [] } } },
        },
      ],
    });
    expect(await balanceOf(target.publicKey(), Asset.native())).toBe('10012.5000000');
    expect(await lastPaymentOf(target.publicKey())).toMatchObject({
      type: 'path_payment_strict_send',
      type_i: 13,
      transaction_successful: true,
      from: source.publicKey(),
      to: target.publicKey(),
      to_muxed: muxed.accountId(),
      to_muxed_id: '7',
      asset_type: 'native',
      amount: '12.5000000',
      source_asset_type: 'native',
      source_amount: '12.5000000',
      destination_min: '12.5000000',
      path: [],
    });
  });

  it('converts at the fixed rate table, the issuer making the market, and conserves lumens', async () => {
    const [issuer, source, target] = await Promise.all([fund(network), fund(network), fund(network)]);
    const usdc = new Asset('USDC', issuer.publicKey());
    await trust(target, usdc);
    // Strict receive: exactly 3 USDC delivered for 30 XLM (1 USDC = 10 XLM), at most 31 sent.
    await submitOne(
      source,
      Operation.pathPaymentStrictReceive({
        sendAsset: Asset.native(),
        sendMax: '31',
        destination: target.publicKey(),
        destAsset: usdc,
        destAmount: '3',
        path: [],
      }),
    );
    expect(await balanceOf(target.publicKey(), usdc)).toBe('3.0000000');
    expect(await balanceOf(source.publicKey(), Asset.native())).toBe('9969.9999900');
    expect(await balanceOf(issuer.publicKey(), Asset.native())).toBe('10030.0000000');
    expect(await lastPaymentOf(target.publicKey())).toMatchObject({
      type: 'path_payment_strict_receive',
      type_i: 2,
      asset_type: 'credit_alphanum4',
      asset_code: 'USDC',
      asset_issuer: issuer.publicKey(),
      amount: '3.0000000',
      source_asset_type: 'native',
      source_amount: '30.0000000',
      source_max: '31.0000000',
    });
    // Strict send back through a hop: 1 USDC → XLM (10) → USDC (1); the issuer pays and takes lumens.
    await trust(source, usdc);
    await submitOne(
      target,
      Operation.pathPaymentStrictSend({
        sendAsset: usdc,
        sendAmount: '1',
        destination: source.publicKey(),
        destAsset: usdc,
        destMin: '1',
        path: [Asset.native()],
      }),
    );
    expect(await balanceOf(source.publicKey(), usdc)).toBe('1.0000000');
    expect(await balanceOf(target.publicKey(), usdc)).toBe('2.0000000');
    expect(await balanceOf(issuer.publicKey(), Asset.native())).toBe('10030.0000000');
  });

  it("rounds a conversion in the market's favour: strict send receives less, strict receive pays more", async () => {
    const [issuer, source, target] = await Promise.all([fund(network), fund(network), fund(network)]);
    const usdc = new Asset('USDC', issuer.publicKey());
    await trust(target, usdc);
    // 0.0000019 XLM is 0.00000019 USDC: strict send delivers 1 stroop, strict receive of 1 stroop pays 10.
    await submitOne(
      source,
      Operation.pathPaymentStrictSend({
        sendAsset: Asset.native(),
        sendAmount: '0.0000019',
        destination: target.publicKey(),
        destAsset: usdc,
        destMin: '0.0000001',
        path: [],
      }),
    );
    expect(await lastPaymentOf(target.publicKey())).toMatchObject({
      amount: '0.0000001',
      source_amount: '0.0000019',
    });
    await submitOne(
      source,
      Operation.pathPaymentStrictReceive({
        sendAsset: Asset.native(),
        sendMax: '0.0000010',
        destination: target.publicKey(),
        destAsset: usdc,
        destAmount: '0.0000001',
        path: [],
      }),
    );
    expect(await lastPaymentOf(target.publicKey())).toMatchObject({
      amount: '0.0000001',
      source_amount: '0.0000010',
    });
  });

  it('fails with op_under_dest_min, op_over_source_max, op_too_few_offers, op_no_trust, op_no_destination and op_underfunded, moving nothing', async () => {
    const [issuer, source, target] = await Promise.all([fund(network), fund(network), fund(network)]);
    const usdc = new Asset('USDC', issuer.publicKey());
    const junk = new Asset('JUNK', issuer.publicKey());
    await trust(target, usdc);
    await trust(target, junk);
    const strictSend = (destination: string, destAsset: Asset, sendAmount: string, destMin: string) =>
      Operation.pathPaymentStrictSend({
        sendAsset: Asset.native(),
        sendAmount,
        destination,
        destAsset,
        destMin,
        path: [],
      });
    const cases: [xdr.Operation, string][] = [
      [strictSend(target.publicKey(), usdc, '10', '1.0000001'), 'op_under_dest_min'],
      [
        Operation.pathPaymentStrictReceive({
          sendAsset: Asset.native(),
          sendMax: '9.9999999',
          destination: target.publicKey(),
          destAsset: usdc,
          destAmount: '1',
          path: [],
        }),
        'op_over_source_max',
      ],
      [strictSend(target.publicKey(), junk, '10', '1'), 'op_too_few_offers'],
      [strictSend(source.publicKey(), usdc, '10', '1'), 'op_no_trust'],
      [strictSend(Keypair.random().publicKey(), Asset.native(), '10', '1'), 'op_no_destination'],
      [strictSend(target.publicKey(), usdc, '20000', '1'), 'op_underfunded'],
    ];
    for (const [operation, code] of cases) {
      const failure = await failureOf(submitOne(source, operation));
      expect(failure.getResultCodes().operations).toEqual([code]);
    }
    expect(await balanceOf(target.publicKey(), usdc)).toBe('0.0000000');
    expect(await balanceOf(issuer.publicKey(), Asset.native())).toBe('10000.0000000');
  });

  it('refuses a non-positive amount with op_malformed at submission', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const operation = Operation.pathPaymentStrictSend({
      sendAsset: Asset.native(),
      sendAmount: '1',
      destination: target.publicKey(),
      destAsset: Asset.native(),
      destMin: '1',
      path: [],
    });
    // The SDK refuses a zero amount itself, so the zero is written into the XDR afterwards.
    const wire = operation.toXdrObject();
    assert(wire.body.type === 13, 'a strict send is operation type 13');
    const zeroed = xdr.Operation.fromXdrObject({
      ...wire,
      body: { ...wire.body, pathPaymentStrictSendOp: { ...wire.body.pathPaymentStrictSendOp, destMin: 0n } },
    });
    const failure = await failureOf(submitOne(source, zeroed));
    expect(failure.getResultCodes().operations).toEqual(['op_malformed']);
  });
});

function feeBump(sponsor: Keypair, inner: Transaction) {
  const bump = TransactionBuilder.buildFeeBumpTransaction(
    sponsor,
    '200',
    inner,
    network.sandbox.networkPassphrase,
  );
  bump.sign(sponsor);
  return bump;
}

describe('fee bumps', () => {
  it('applies a fee bump, charges the fee source and finds it by outer and inner hash', async () => {
    const [source, sponsor, target] = await Promise.all([fund(network), fund(network), fund(network)]);
    const inner = await paymentTransaction(network, source, target.publicKey(), '2');
    const bump = feeBump(sponsor, inner);
    const response = await network.horizon.submitTransaction(bump);
    const outerHash = Buffer.from(bump.hash()).toString('hex');
    const innerHash = Buffer.from(inner.hash()).toString('hex');
    expect(response.hash).toBe(outerHash);
    expect(xdr.TransactionResult.fromXdr(response.result_xdr, 'base64').result.type).toBe(
      'txFeeBumpInnerSuccess',
    );
    const byInner = await network.horizon.transactions().transaction(innerHash).call();
    expect(byInner).toMatchObject({
      hash: innerHash,
      fee_bump_transaction: { hash: outerHash },
      fee_charged: '200',
    });
    expect(await nativeBalance(sponsor.publicKey())).toBe('9999.9999800');
    expect(await nativeBalance(source.publicKey())).toBe('9998.0000000');
    const byRpc = await network.rpcServer.getTransaction(innerHash);
    expect(byRpc).toMatchObject({ status: 'SUCCESS', feeBump: true });
  });

  it('reports an inner failure of a fee bump with inner_transaction result codes', async () => {
    const [source, sponsor] = await Promise.all([fund(network), fund(network)]);
    const inner = await paymentTransaction(network, source, Keypair.random().publicKey(), '1');
    const bump = feeBump(sponsor, inner);
    const error = await failureOf(network.horizon.submitTransaction(bump));
    expect(resultCodesOf(error)).toEqual({
      transaction: 'tx_fee_bump_inner_failed',
      inner_transaction: 'tx_failed',
      operations: ['op_no_destination'],
    });
  });
});

describe('payments', () => {
  it('pages with cursor, limit and order and joins transactions', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    for (const amount of ['1', '2', '3']) {
      await network.horizon.submitTransaction(
        await paymentTransaction(network, source, target.publicKey(), amount),
      );
    }
    const first = await network.horizon
      .payments()
      .forAccount(target.publicKey())
      .limit(2)
      .join('transactions')
      .call();
    expect(first.records.map((record) => record.type)).toEqual(['create_account', 'payment']);
    const joined = await first.records[1]?.transaction();
    expect(joined?.hash).toBe(first.records[1]?.transaction_hash);
    const second = await first.next();
    expect(second.records.map((record) => ('amount' in record ? record.amount : ''))).toEqual([
      '2.0000000',
      '3.0000000',
    ]);
    const third = await second.next();
    expect(third.records).toEqual([]);
    const cursor = first.records[0]?.paging_token ?? '';
    const fromCursor = await network.horizon
      .payments()
      .forAccount(target.publicKey())
      .cursor(cursor)
      .limit(1)
      .call();
    expect(fromCursor.records[0]?.id).toBe(first.records[1]?.id);
    const newest = await network.horizon
      .payments()
      .forAccount(target.publicKey())
      .order('desc')
      .limit(1)
      .call();
    expect(newest.records[0]).toMatchObject({ amount: '3.0000000', from: source.publicKey() });
    const back = await newest.prev();
    expect(back.records).toEqual([]);
  });

  it('refuses a page limit above 200', async () => {
    const target = await fund(network);
    await expect(
      network.horizon.payments().forAccount(target.publicKey()).limit(201).call(),
    ).rejects.toMatchObject({
      response: { status: 400, extras: { invalid_field: 'limit' } },
    });
  });

  it('streams new payments to an SDK stream', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const received: string[] = [];
    let close: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => {
      close = network.horizon
        .payments()
        .forAccount(target.publicKey())
        .cursor('now')
        .stream({
          onmessage: (record) => {
            if ('amount' in record && typeof record.amount === 'string') received.push(record.amount);
            if (received.length === 2) resolve();
          },
        });
    });
    await network.horizon.submitTransaction(
      await paymentTransaction(network, source, target.publicKey(), '4'),
    );
    await network.horizon.submitTransaction(
      await paymentTransaction(network, source, target.publicKey(), '5'),
    );
    await arrived;
    close();
    expect(received).toEqual(['4.0000000', '5.0000000']);
  });
});

describe('network information', () => {
  it('serves fee stats, base fee, time bounds from the Date header and chained ledgers', async () => {
    expect(await network.horizon.fetchBaseFee()).toBe(100);
    const stats = await network.horizon.feeStats();
    expect(stats.last_ledger_base_fee).toBe('100');
    expect(stats.fee_charged.p50).toMatch(/^\d+$/);
    const before = Math.floor(Date.now() / 1_000);
    const bounds = await network.horizon.fetchTimebounds(30);
    expect(bounds.maxTime).toBeGreaterThanOrEqual(before + 29);
    expect(bounds.maxTime).toBeLessThanOrEqual(before + 32);
    const page = await network.horizon.ledgers().order('desc').limit(3).call();
    const [newest, middle] = page.records;
    expect(newest?.sequence).toBe((middle?.sequence ?? 0) + 1);
    expect(newest?.prev_hash).toBe(middle?.hash);
    expect(newest?.total_coins).toBe('100000000000.0000000');
    expect(xdr.LedgerHeader.fromXdr(newest?.header_xdr ?? '', 'base64').ledgerSeq).toBe(newest?.sequence);
  });

  it('answers errors as problem+json with a Date header', async () => {
    const response = await fetch(
      `${network.sandbox.horizonUrls[0]}/accounts/${Keypair.random().publicKey()}`,
    );
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(response.headers.get('date')).toBeTruthy();
  });

  it('accepts asynchronous submissions with PENDING, DUPLICATE and ERROR', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const transaction = await paymentTransaction(network, source, target.publicKey(), '1');
    const pending = await network.horizon.submitAsyncTransaction(transaction);
    expect(pending).toMatchObject({
      tx_status: 'PENDING',
      hash: Buffer.from(transaction.hash()).toString('hex'),
    });
    const duplicate = await network.horizon
      .submitAsyncTransaction(transaction)
      .catch((error: unknown) => error);
    expect(duplicate).toBeInstanceOf(BadResponseError);
    expect((duplicate as BadResponseError).response).toMatchObject({
      status: 409,
      data: { tx_status: 'DUPLICATE' },
    });
    const bad = await paymentTransaction(network, source, target.publicKey(), '1', { fee: '1' });
    const refused = await network.horizon.submitAsyncTransaction(bad).catch((error: unknown) => error);
    expect((refused as BadResponseError).response).toMatchObject({
      status: 400,
      data: { tx_status: 'ERROR' },
    });
  });
});

describe('Stellar RPC', () => {
  it('reports health, network and the latest ledger with decodable XDR', async () => {
    expect(await network.rpcServer.getHealth()).toMatchObject({ status: 'healthy' });
    expect(await network.rpcServer.getNetwork()).toMatchObject({
      passphrase: network.sandbox.networkPassphrase,
    });
    const latest = await network.rpcServer.getLatestLedger();
    expect(latest.sequence).toBeGreaterThan(1);
  });

  it('sends transactions and polls them to SUCCESS, FAILED and NOT_FOUND', async () => {
    const [source, target] = await Promise.all([fund(network), fund(network)]);
    const good = await paymentTransaction(network, source, target.publicKey(), '1');
    const sent = await network.rpcServer.sendTransaction(good);
    expect(sent.status).toBe('PENDING');
    const success = await network.rpcServer.pollTransaction(sent.hash, {
      attempts: 20,
      sleepStrategy: () => 100,
    });
    expect(success.status).toBe(rpc.Api.GetTransactionStatus.SUCCESS);
    const failing = await paymentTransaction(network, source, Keypair.random().publicKey(), '1');
    const failedSend = await network.rpcServer.sendTransaction(failing);
    const failed = await network.rpcServer.pollTransaction(failedSend.hash, {
      attempts: 20,
      sleepStrategy: () => 100,
    });
    expect(failed.status).toBe(rpc.Api.GetTransactionStatus.FAILED);
    if (failed.status === rpc.Api.GetTransactionStatus.FAILED) {
      expect(failed.resultXdr.result.type).toBe('txFailed');
      expect(failed.resultMetaXdr.type).toBeDefined();
    }
    const missing = await network.rpcServer.pollTransaction('00'.repeat(32), {
      attempts: 2,
      sleepStrategy: () => 10,
    });
    expect(missing.status).toBe(rpc.Api.GetTransactionStatus.NOT_FOUND);
  });

  it('returns ERROR with a decodable result for a refused transaction', async () => {
    const source = await fund(network);
    const stale = builder(new Account(source.publicKey(), '1'))
      .addOperation(
        Operation.payment({ destination: source.publicKey(), asset: Asset.native(), amount: '1' }),
      )
      .setTimeout(60)
      .build();
    stale.sign(source);
    const sent = await network.rpcServer.sendTransaction(stale);
    expect(sent.status).toBe('ERROR');
    expect(sent.errorResult?.result.type).toBe('txBadSeq');
  });
});
