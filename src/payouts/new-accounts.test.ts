import {
  Account,
  Asset,
  Horizon,
  Keypair,
  MuxedAccount,
  Operation,
  TransactionBuilder,
  type xdr,
} from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import { ensureSystemAccounts, insertAsset } from '../ledger/data.ts';
import { postJournal } from '../ledger/service.ts';
import { ensureChannels } from '../stellar/channels.ts';

let harness: PayoutHarness;
let horizon: Horizon.Server;

beforeAll(async () => {
  harness = await startPayoutHarness();
  horizon = new Horizon.Server(harness.endpoints.horizonUrls[0] ?? '', { allowHttp: true });
});

afterAll(async () => {
  await harness.close();
});

async function fundedKeypair(): Promise<Keypair> {
  const keypair = Keypair.random();
  const response = await fetch(`${harness.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  expect(response.status).toBe(200);
  return keypair;
}

async function nativeBalance(accountId: string): Promise<string | undefined> {
  const account = await horizon.loadAccount(accountId).catch(() => undefined);
  return account?.balances.find((line) => line.asset_type === 'native')?.balance;
}

async function submit(signer: Keypair, operation: xdr.Operation): Promise<void> {
  const account = await horizon.loadAccount(signer.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: '100',
    networkPassphrase: harness.endpoints.networkPassphrase,
  })
    .addOperation(operation)
    .setTimeout(60)
    .build();
  transaction.sign(signer);
  await horizon.submitTransaction(transaction);
}

async function accountBalance(id: string): Promise<bigint> {
  const [row] = await harness.service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where id = ${id}::uuid`;
  return row?.balance ?? 0n;
}

async function systemBalance(type: string, asset: string): Promise<bigint> {
  const [row] = await harness.service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where type = ${type} and asset = ${asset}`;
  return row?.balance ?? 0n;
}

async function payoutCount(source: string): Promise<number> {
  const [row] = await harness.service.db.sql<{ count: number }[]>`
    select count(*)::int as count from payouts where source_account_id = ${source}::uuid`;
  return row?.count ?? 0;
}

async function refundsOf(payoutId: string): Promise<number> {
  const rows = await harness.service.db.sql`
    select id from journal_transactions where kind = 'payout_refund' and reference = ${payoutId}`;
  return rows.length;
}

/** The operation types of the one settlement transaction that carried these payouts. */
async function operationsCarrying(payoutIds: readonly string[]): Promise<string[][]> {
  const rows = await harness.service.db.sql<{ envelopeXdr: string }[]>`
    select distinct a.envelope_xdr as "envelopeXdr" from settlement_attempts a
    join settlement_attempt_payouts l on l.attempt_id = a.id
    where l.payout_id = any(${payoutIds as string[]}::uuid[]) and a.state = 'succeeded'`;
  return rows.map((row) =>
    TransactionBuilder.fromXDR(row.envelopeXdr, harness.endpoints.networkPassphrase).operations.map(
      (operation) => operation.type,
    ),
  );
}

/**
 * A credit asset on the sandbox: in the ledger (with its system accounts), trusted and held by the
 * hot wallet, and a customer holding `amount` of it.
 */
async function creditAsset(): Promise<{ code: string; asset: Asset; customer: string }> {
  const issuer = await fundedKeypair();
  const asset = new Asset('USD', issuer.publicKey());
  const code = `USD:${issuer.publicKey()}`;
  const sql = harness.service.db.sql;
  await insertAsset(sql, code, 7);
  await ensureSystemAccounts(sql);
  await ensureChannels(harness.endpoints, harness.wallet, ['XLM', code]);
  await submit(
    issuer,
    Operation.payment({ destination: harness.wallet.hotWallet.publicKey(), asset, amount: '1000' }),
  );
  const [customer] = await sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', ${code}) returning id`;
  const [fees] = await sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = ${code}`;
  await sql.begin((tx) =>
    postJournal(tx, {
      kind: 'test_funding',
      entries: [
        { accountId: fees?.id ?? '', amountMinor: -1_000_000_000n },
        { accountId: customer?.id ?? '', amountMinor: 1_000_000_000n },
      ],
    }),
  );
  return { code, asset, customer: customer?.id ?? '' };
}

async function trust(holder: Keypair, asset: Asset, limit: string): Promise<void> {
  await submit(holder, Operation.changeTrust({ asset, limit }));
}

describe('XLM payouts to an address that does not exist yet', () => {
  it('settles by creating the account, in the same transaction as a payment to an existing account', async () => {
    const source = await harness.customer(100_000_000n);
    const fresh = Keypair.random().publicKey();
    const existing = (await fundedKeypair()).publicKey();
    const settlementBefore = await harness.balance('settlement');
    const responses = [
      await harness.pay({ source, destination: fresh, amount: '5' }),
      await harness.pay({ source, destination: existing, amount: '1' }),
    ];
    for (const response of responses) expect(response.statusCode, JSON.stringify(response.body)).toBe(201);
    const payoutIds = responses.map((response) => String(response.body.id));
    await harness.settleUntil(async () =>
      Object.values(await harness.states(payoutIds)).every((state) => state === 'settled'),
    );
    expect(await operationsCarrying(payoutIds)).toEqual([['createAccount', 'payment']]);
    expect(await nativeBalance(fresh)).toBe('5.0000000');
    expect(await nativeBalance(existing)).toBe('10001.0000000');
    expect(await accountBalance(source)).toBe(40_000_000n);
    expect((await harness.balance('settlement')) - settlementBefore).toBe(60_000_000n);
  });

  it('refuses an amount below the new account minimum balance and changes nothing', async () => {
    const source = await harness.customer(100_000_000n);
    const clearingBefore = await harness.balance('payout_clearing');
    const response = await harness.pay({
      source,
      destination: Keypair.random().publicKey(),
      amount: '0.9999999',
    });
    expect(response.statusCode).toBe(422);
    expect(response.body.type).toContain('payouts/below-account-reserve');
    expect(await payoutCount(source)).toBe(0);
    expect(await accountBalance(source)).toBe(100_000_000n);
    expect(await harness.balance('payout_clearing')).toBe(clearingBefore);
    // Exactly the minimum balance is enough.
    const minimum = await harness.pay({ source, destination: Keypair.random().publicKey(), amount: '1' });
    expect(minimum.statusCode).toBe(201);
    await harness.settleUntil(
      async () => (await harness.states([String(minimum.body.id)]))[String(minimum.body.id)] === 'settled',
    );
  });

  it('refuses a muxed address over an account that does not exist: a creation would lose its id', async () => {
    const source = await harness.customer(100_000_000n);
    const muxed = new MuxedAccount(new Account(Keypair.random().publicKey(), '1'), '7').accountId();
    const response = await harness.pay({ source, destination: muxed, amount: '5' });
    expect(response.statusCode).toBe(422);
    expect(response.body.type).toContain('payouts/destination-missing');
    expect(await payoutCount(source)).toBe(0);
  });

  it('pays the account instead when it appears between acceptance and settlement', async () => {
    const source = await harness.customer(100_000_000n);
    const late = Keypair.random().publicKey();
    const response = await harness.pay({ source, destination: late, amount: '3' });
    expect(response.statusCode).toBe(201);
    await fetch(`${harness.endpoints.friendbotUrl}?addr=${late}`);
    const id = String(response.body.id);
    await harness.settleUntil(async () => (await harness.states([id]))[id] === 'settled');
    expect(await operationsCarrying([id])).toEqual([['payment']]);
    expect(await nativeBalance(late)).toBe('10003.0000000');
  });

  it('fails and refunds once when the account appears after the build read it (op_already_exists)', async () => {
    const source = await harness.customer(100_000_000n);
    const existing = (await fundedKeypair()).publicKey();
    const clearingBefore = await harness.balance('payout_clearing');
    const response = await harness.pay({ source, destination: existing, amount: '4' });
    const id = String(response.body.id);
    // A build that still reads the account as missing creates it; the network says it exists.
    const stale = harness.engineWith({ ...harness.chain, destination: async () => ({ kind: 'missing' }) });
    await harness.settleUntil(async () => (await harness.states([id]))[id] === 'failed', undefined, stale);
    await stale.runRound();
    expect(await refundsOf(id)).toBe(1);
    expect(await accountBalance(source)).toBe(100_000_000n);
    expect(await harness.balance('payout_clearing')).toBe(clearingBefore);
    expect(await nativeBalance(existing)).toBe('10000.0000000');
    const [payout] = await harness.service.db.sql<{ reason: string }[]>`
      select state_reason as reason from payouts where id = ${id}::uuid`;
    expect(payout?.reason).toContain('op_already_exists');
  });
});

describe('what the engine remembers of destinations', () => {
  it('reads a destination once while it exists, and reads it again after a payment finds it gone', async () => {
    const source = await harness.customer(100_000_000n);
    const existing = (await fundedKeypair()).publicKey();
    const vanished = Keypair.random().publicKey();
    const reads: string[] = [];
    let staleExists = true;
    const engine = harness.engineWith({
      ...harness.chain,
      destination: async (accountId, asset) => {
        reads.push(accountId);
        // As if the account had existed when read and was merged away before the payment applied.
        if (accountId === vanished && staleExists) return { kind: 'exists', trusted: true };
        return harness.chain.destination(accountId, asset);
      },
    });
    const settle = async (destination: string, state: 'settled' | 'failed'): Promise<string> => {
      const response = await harness.pay({ source, destination, amount: '2' });
      expect(response.statusCode).toBe(201);
      const id = String(response.body.id);
      await harness.settleUntil(async () => (await harness.states([id]))[id] === state, undefined, engine);
      return id;
    };

    await settle(existing, 'settled');
    await settle(existing, 'settled');
    expect(reads.filter((accountId) => accountId === existing)).toHaveLength(1);

    const failed = await settle(vanished, 'failed');
    expect(await refundsOf(failed)).toBe(1);
    staleExists = false;
    const created = await settle(vanished, 'settled');
    expect(await operationsCarrying([created])).toEqual([['createAccount']]);
    expect(reads.filter((accountId) => accountId === vanished)).toHaveLength(2);
    expect(await nativeBalance(vanished)).toBe('2.0000000');
  });
});

describe('credit asset payouts', () => {
  it('refuses a destination that does not exist or has no trustline, and pays one that has', async () => {
    const { code, asset, customer } = await creditAsset();
    const missing = await harness.pay({
      source: customer,
      destination: Keypair.random().publicKey(),
      amount: '5',
      asset: code,
    });
    expect(missing.statusCode).toBe(422);
    expect(missing.body.type).toContain('payouts/destination-missing');
    const untrusting = await fundedKeypair();
    const refused = await harness.pay({
      source: customer,
      destination: untrusting.publicKey(),
      amount: '5',
      asset: code,
    });
    expect(refused.statusCode).toBe(422);
    expect(refused.body.type).toContain('payouts/destination-no-trustline');
    expect(await payoutCount(customer)).toBe(0);
    expect(await accountBalance(customer)).toBe(1_000_000_000n);

    await trust(untrusting, asset, '1000');
    const paid = await harness.pay({
      source: customer,
      destination: untrusting.publicKey(),
      amount: '5',
      asset: code,
    });
    expect(paid.statusCode).toBe(201);
    const id = String(paid.body.id);
    await harness.settleUntil(async () => (await harness.states([id]))[id] === 'settled');
    const account = await horizon.loadAccount(untrusting.publicKey());
    expect(account.balances.find((line) => 'asset_code' in line && line.asset_code === 'USD')?.balance).toBe(
      '5.0000000',
    );
  });

  it('fails and refunds once when the trustline is removed between acceptance and settlement', async () => {
    const { code, asset, customer } = await creditAsset();
    const holder = await fundedKeypair();
    await trust(holder, asset, '1000');
    const clearingBefore = await systemBalance('payout_clearing', code);
    const settlementBefore = await systemBalance('settlement', code);
    const response = await harness.pay({
      source: customer,
      destination: holder.publicKey(),
      amount: '7',
      asset: code,
    });
    expect(response.statusCode).toBe(201);
    expect(await accountBalance(customer)).toBe(930_000_000n);
    await trust(holder, asset, '0');
    const id = String(response.body.id);
    await harness.settleUntil(async () => (await harness.states([id]))[id] === 'failed');
    await harness.engine.runRound();
    expect(await refundsOf(id)).toBe(1);
    expect(await accountBalance(customer)).toBe(1_000_000_000n);
    expect(await systemBalance('payout_clearing', code)).toBe(clearingBefore);
    expect(await systemBalance('settlement', code)).toBe(settlementBefore);
    const [payout] = await harness.service.db.sql<{ reason: string }[]>`
      select state_reason as reason from payouts where id = ${id}::uuid`;
    expect(payout?.reason).toContain('op_no_trust');
  });
});

describe("payouts to the service's own accounts", () => {
  it('refuses the hot wallet, a channel and muxed addresses over them, and writes nothing', async () => {
    const source = await harness.customer(100_000_000n);
    const hot = harness.wallet.hotWallet.publicKey();
    const channel = harness.wallet.channels[0]?.publicKey() ?? '';
    const destinations = [
      hot,
      channel,
      new MuxedAccount(new Account(hot, '1'), '99').accountId(),
      new MuxedAccount(new Account(channel, '1'), '1').accountId(),
    ];
    for (const destination of destinations) {
      const response = await harness.pay({ source, destination, amount: '2' });
      expect(response.statusCode, destination).toBe(422);
      expect(response.body.type).toContain('payouts/destination-is-platform');
    }
    expect(await payoutCount(source)).toBe(0);
    expect(await accountBalance(source)).toBe(100_000_000n);
  });
});
