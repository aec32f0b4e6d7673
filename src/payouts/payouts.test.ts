import { Account, Horizon, Keypair, MuxedAccount } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';

let harness: PayoutHarness;

beforeAll(async () => {
  harness = await startPayoutHarness();
});

afterAll(async () => {
  await harness.close();
});

async function onChainBalance(accountId: string): Promise<string | undefined> {
  const horizon = new Horizon.Server(harness.endpoints.horizonUrls[0] ?? '', { allowHttp: true });
  const account = await horizon.loadAccount(accountId).catch(() => undefined);
  return account?.balances.find((balance) => balance.asset_type === 'native')?.balance;
}

async function funded(): Promise<string> {
  const keypair = Keypair.random();
  await fetch(`${harness.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair.publicKey();
}

async function ids(responses: { body: Record<string, unknown> }[]): Promise<string[]> {
  return responses.map((response) => String(response.body.id));
}

describe('accepting payouts', () => {
  it('moves the amount to payout_clearing and answers 201 accepted', async () => {
    const source = await harness.customer(100_000_000n);
    const clearingBefore = await harness.balance('payout_clearing');
    const response = await harness.pay({ source, destination: await funded(), amount: '2.5' });
    expect(response.statusCode).toBe(201);
    expect(response.body).toMatchObject({
      state: 'accepted',
      amount: '2.5000000',
      memo: { type: 'none', value: null },
    });
    expect((await harness.balance('payout_clearing')) - clearingBefore).toBe(25_000_000n);
    const [account] = await harness.service.db.sql<{ balance: bigint }[]>`
      select balance_minor as balance from accounts where id = ${source}::uuid`;
    expect(account?.balance).toBe(75_000_000n);
    await harness.settleUntil(
      async () => (await harness.states([String(response.body.id)]))[String(response.body.id)] === 'settled',
    );
  });

  it('refuses bad input with a problem and changes nothing', async () => {
    const source = await harness.customer(10_000_000n);
    const destination = await funded();
    const cases: [Record<string, unknown>, number, string][] = [
      [{ destination: 'GABC' }, 400, 'request/validation'],
      [{ destination: `G${'A'.repeat(55)}` }, 400, 'payouts/invalid-destination'],
      [{ memo: { type: 'text', value: 'x'.repeat(29) } }, 400, 'payouts/invalid-memo'],
      [{ memo: { type: 'id', value: '18446744073709551616' } }, 400, 'payouts/invalid-memo'],
      [{ memo: { type: 'hash', value: 'ab' } }, 400, 'payouts/invalid-memo'],
      [{ amount: '0.00000001' }, 400, 'money/too-many-decimals'],
      [{ amount: '2' }, 422, 'ledger/insufficient-funds'],
      [{ amount: 1 }, 400, 'request/validation'],
    ];
    for (const [change, status, type] of cases) {
      const response = await harness.service.app.inject({
        method: 'POST',
        url: '/v1/payouts',
        payload: { sourceAccountId: source, destination, asset: 'XLM', amount: '1', ...change },
        headers: {
          authorization: `Bearer ${await harness.service.token('service')}`,
          'idempotency-key': `bad-${JSON.stringify(change)}`,
        },
      });
      expect(response.statusCode, JSON.stringify(change)).toBe(status);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().type).toContain(type);
    }
    const [count] = await harness.service.db.sql<{ count: number }[]>`
      select count(*)::int as count from payouts where source_account_id = ${source}::uuid`;
    expect(count?.count).toBe(0);
  });

  it('accepts a muxed destination and every memo type, and pays each with its memo', async () => {
    const source = await harness.customer(100_000_000n);
    const base = await funded();
    const muxed = new MuxedAccount(new Account(base, '1'), '42').accountId();
    const responses = [
      await harness.pay({ source, destination: muxed, amount: '1' }),
      await harness.pay({
        source,
        destination: base,
        amount: '1',
        memo: { type: 'text', value: 'invoice 7' },
      }),
      await harness.pay({ source, destination: base, amount: '1', memo: { type: 'id', value: '123' } }),
      await harness.pay({
        source,
        destination: base,
        amount: '1',
        memo: { type: 'hash', value: 'ab'.repeat(32) },
      }),
    ];
    for (const response of responses) expect(response.statusCode).toBe(201);
    const payoutIds = await ids(responses);
    await harness.settleUntil(async () =>
      Object.values(await harness.states(payoutIds)).every((state) => state === 'settled'),
    );
    expect(await onChainBalance(base)).toBe('10004.0000000');
  });
});

describe('settlement', () => {
  it('settles a batch in one transaction and moves clearing to settlement', async () => {
    const source = await harness.customer(1_000_000_000n);
    const destinations = await Promise.all(Array.from({ length: 5 }, () => funded()));
    const clearingBefore = await harness.balance('payout_clearing');
    const settlementBefore = await harness.balance('settlement');
    const responses = await Promise.all(
      destinations.map((destination) => harness.pay({ source, destination, amount: '3' })),
    );
    const payoutIds = await ids(responses);
    await harness.settleUntil(async () =>
      Object.values(await harness.states(payoutIds)).every((state) => state === 'settled'),
    );
    for (const destination of destinations) expect(await onChainBalance(destination)).toBe('10003.0000000');
    expect(await harness.balance('payout_clearing')).toBe(clearingBefore);
    expect((await harness.balance('settlement')) - settlementBefore).toBe(150_000_000n);
    const attempts = await harness.service.db.sql<{ count: number }[]>`
      select count(distinct attempt_id)::int as count from settlement_attempt_payouts where payout_id = any(${payoutIds}::uuid[])`;
    expect(attempts[0]?.count).toBeLessThanOrEqual(2);
  });

  it('fails and refunds a payment the network refuses for good, and settles the rest of its batch', async () => {
    const source = await harness.customer(100_000_000n);
    const good = await Promise.all([funded(), funded()]);
    const missing = Keypair.random().publicKey();
    const responses = [
      await harness.pay({ source, destination: good[0] ?? '', amount: '1' }),
      await harness.pay({ source, destination: missing, amount: '2' }),
      await harness.pay({ source, destination: good[1] ?? '', amount: '1' }),
    ];
    const payoutIds = await ids(responses);
    // The build reads the missing account as existing (as if it were merged after the read), so
    // the payout is paid, not created: the network refuses that payment for good.
    const stale = harness.engineWith({
      ...harness.chain,
      destination: async () => ({ kind: 'exists', trusted: true }),
    });
    await harness.settleUntil(
      async () => {
        const states = Object.values(await harness.states(payoutIds));
        return states.every((state) => state === 'settled' || state === 'failed');
      },
      undefined,
      stale,
    );
    const states = await harness.states(payoutIds);
    expect([states[payoutIds[0] ?? ''], states[payoutIds[1] ?? ''], states[payoutIds[2] ?? '']]).toEqual([
      'settled',
      'failed',
      'settled',
    ]);
    const [account] = await harness.service.db.sql<{ balance: bigint }[]>`
      select balance_minor as balance from accounts where id = ${source}::uuid`;
    expect(account?.balance).toBe(80_000_000n);
    const refunds = await harness.service.db.sql`
      select id from journal_transactions where kind = 'payout_refund' and reference = ${payoutIds[1] ?? ''}`;
    expect(refunds).toHaveLength(1);
    const detail = await harness.service.app.inject({
      method: 'GET',
      url: `/v1/payouts/${payoutIds[1]}`,
      headers: { authorization: `Bearer ${await harness.service.token('viewer')}` },
    });
    expect(detail.json().stateReason).toContain('op_no_destination');
    expect(detail.json().history.map((entry: { toState: string }) => entry.toState)).toEqual([
      'accepted',
      'submitted',
      'failed',
    ]);
  });
});
