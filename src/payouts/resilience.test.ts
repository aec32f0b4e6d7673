import { Account, Asset, Keypair, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import { updatePaymentsMode, updatePayoutsFrozen } from '../controls/data.ts';
import { registry } from '../platform/metrics.ts';

let harness: PayoutHarness | undefined;

afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function funded(h: PayoutHarness): Promise<string> {
  const keypair = Keypair.random();
  await fetch(`${h.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair.publicKey();
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return found
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

/** On-chain payments into an account, other than its friendbot funding. */
async function paymentsInto(h: PayoutHarness, accountId: string): Promise<number> {
  const response = await fetch(`${h.endpoints.horizonUrls[1]}/accounts/${accountId}/payments?limit=200`);
  const body = (await response.json()) as { _embedded: { records: { type: string }[] } };
  return body._embedded.records.filter((record) => record.type === 'payment').length;
}

async function attemptsPerPayout(h: PayoutHarness, ids: readonly string[]): Promise<number[]> {
  const rows = await h.service.db.sql<{ count: number }[]>`
    select count(*)::int as count from settlement_attempt_payouts
    where payout_id = any(${ids as string[]}::uuid[]) group by payout_id`;
  return rows.map((row) => row.count);
}

async function runRounds(h: PayoutHarness, durationMs: number): Promise<void> {
  const deadline = Date.now() + durationMs;
  while (Date.now() < deadline) await h.engine.runRound();
}

const allSettled = (h: PayoutHarness, ids: readonly string[]) => async () =>
  Object.values(await h.states(ids)).every((state) => state === 'settled');

describe('Stellar failover', () => {
  it('settles through the second Horizon, then through RPC, and waits without refunds when everything is down', async () => {
    const h = await startPayoutHarness();
    harness = h;
    const source = await h.customer(1_000_000_000n);
    const destination = await funded(h);
    const { faults } = h.network.sandbox;

    const first = faults.add({ kind: 'listener_down', listener: 0 });
    const viaSecond = await h.pay({ source, destination, amount: '1' });
    await h.settleUntil(allSettled(h, [String(viaSecond.body.id)]));
    expect(
      await metric('stellar_requests_total', { path: 'horizon-1', operation: 'submit', outcome: 'ok' }),
    ).toBeGreaterThan(0);

    const second = faults.add({ kind: 'listener_down', listener: 1 });
    const rpcBefore = await metric('stellar_requests_total', {
      path: 'rpc',
      operation: 'submit',
      outcome: 'ok',
    });
    const viaRpc = await h.pay({ source, destination, amount: '1' });
    await h.settleUntil(allSettled(h, [String(viaRpc.body.id)]));
    expect(
      await metric('stellar_requests_total', { path: 'rpc', operation: 'submit', outcome: 'ok' }),
    ).toBeGreaterThan(rpcBefore);

    const rpcDown = faults.add({ kind: 'http_error', status: 503, route: 'rpc' });
    const waiting = await h.pay({ source, destination, amount: '1' });
    await runRounds(h, 1_500);
    expect(await h.states([String(waiting.body.id)])).toEqual({ [String(waiting.body.id)]: 'accepted' });
    expect(await metric('payouts_waiting_for_network')).toBe(1);
    const refunds = await h.service.db.sql`select 1 from journal_transactions where kind = 'payout_refund'`;
    expect(refunds).toHaveLength(0);

    for (const fault of [first, second, rpcDown]) faults.remove(fault.id);
    await h.settleUntil(allSettled(h, [String(waiting.body.id)]));
    expect(await paymentsInto(h, destination)).toBe(3);
    expect(await metric('payouts_waiting_for_network')).toBe(0);
  });

  it('keeps an ambiguous submission live while every path is down and settles it once on recovery', async () => {
    const h = await startPayoutHarness();
    harness = h;
    const source = await h.customer(1_000_000_000n);
    const destination = await funded(h);
    const { faults } = h.network.sandbox;
    // The only path that takes the submission applies it and drops the connection: ambiguous.
    const first = [
      faults.add({ kind: 'accepted_timeout', route: 'horizon.submit', listener: 0, mode: 'drop_connection' }),
      faults.add({ kind: 'listener_down', listener: 1 }),
      faults.add({ kind: 'http_error', status: 503, route: 'rpc' }),
    ];
    const payout = await h.pay({ source, destination, amount: '4' });
    const id = String(payout.body.id);
    await h.engine.runRound();
    expect(await h.states([id])).toEqual({ [id]: 'submitted' });
    const down = faults.add({ kind: 'listener_down', listener: 0 });
    await runRounds(h, 1_000);
    expect(await h.states([id])).toEqual({ [id]: 'submitted' });
    expect(await metric('payouts_waiting_for_network')).toBe(1);
    for (const fault of [...first, down]) faults.remove(fault.id);
    await h.settleUntil(allSettled(h, [id]));
    expect(await attemptsPerPayout(h, [id])).toEqual([1]);
    expect(await paymentsInto(h, destination)).toBe(1);
  });
});

describe('a frozen ledger', () => {
  it('keeps payouts submitted, rebuilds none before its window passed, and settles each once after unfreezing', async () => {
    const h = await startPayoutHarness({
      channels: 3,
      engine: { windowSeconds: 60, windowLedgers: 100, resubmitAfterMs: 200 },
    });
    harness = h;
    const source = await h.customer(1_000_000_000n);
    const destinations = await Promise.all([funded(h), funded(h), funded(h)]);
    const frozen = h.network.sandbox.faults.add({ kind: 'freeze_ledgers' });
    const ids = [];
    for (const destination of destinations) {
      const payout = await h.pay({
        source,
        destination,
        amount: '1',
        memo: { type: 'text', value: 'frozen' },
      });
      ids.push(String(payout.body.id));
    }
    await runRounds(h, 3_000);
    expect(Object.values(await h.states(ids))).toEqual(['submitted', 'submitted', 'submitted']);
    expect(await attemptsPerPayout(h, ids)).toEqual([1, 1, 1]);
    h.network.sandbox.faults.remove(frozen.id);
    await h.settleUntil(allSettled(h, ids));
    expect(await attemptsPerPayout(h, ids)).toEqual([1, 1, 1]);
    for (const destination of destinations) expect(await paymentsInto(h, destination)).toBe(1);
    const expired = await h.service.db.sql`select 1 from settlement_attempts where state <> 'succeeded'`;
    expect(expired).toHaveLength(0);
  });
});

describe('kill switches', () => {
  it('holds accepted payouts unsubmitted while frozen, and refuses new payouts in read_only', async () => {
    const h = await startPayoutHarness();
    harness = h;
    const sql = h.service.db.sql;
    const source = await h.customer(100_000_000n);
    const destination = await funded(h);
    await updatePayoutsFrozen(sql, true, 'test', 'drill');
    const held = await h.pay({ source, destination, amount: '1' });
    expect(held.statusCode).toBe(201);
    await runRounds(h, 500);
    expect(await h.states([String(held.body.id)])).toEqual({ [String(held.body.id)]: 'accepted' });
    expect(await sql`select 1 from settlement_attempts`).toHaveLength(0);

    await updatePaymentsMode(sql, 'read_only', 'test', 'drill');
    const refused = await h.pay({ source, destination, amount: '1' });
    expect(refused.statusCode).toBe(503);
    expect(refused.body.type).toContain('payments/read-only');
    const [count] = await sql<{ count: number }[]>`select count(*)::int as count from payouts`;
    expect(count?.count).toBe(1);

    await updatePaymentsMode(sql, 'standard', 'test', 'drill over');
    await updatePayoutsFrozen(sql, false, 'test', 'drill over');
    await h.settleUntil(allSettled(h, [String(held.body.id)]));
  });
});

describe('a refused submission', () => {
  it('keeps a transaction refused for its sequence number until its window passes, then rebuilds and settles once', async () => {
    const h = await startPayoutHarness({ channels: 1, engine: { windowSeconds: 2, windowLedgers: 10 } });
    harness = h;
    const source = await h.customer(100_000_000n);
    const destination = await funded(h);
    // A wrong remembered sequence number: the network refuses the transaction with tx_bad_seq.
    await h.service.db.sql`update payout_channels set next_sequence = 999999999999`;
    const payout = await h.pay({ source, destination, amount: '1' });
    const id = String(payout.body.id);
    await h.engine.runRound();
    const [attempt] = await h.service.db.sql<{ state: string; outcome_reason: string }[]>`
      select state, outcome_reason from settlement_attempts`;
    expect(attempt).toEqual({ state: 'submitted', outcome_reason: 'refused: tx_bad_seq' });
    expect(await h.states([id])).toEqual({ [id]: 'submitted' });
    await h.settleUntil(allSettled(h, [id]));
    const attempts = await h.service.db.sql<
      { state: string }[]
    >`select state from settlement_attempts order by created_at`;
    expect(attempts.map((row) => row.state)).toEqual(['expired', 'succeeded']);
    expect(await paymentsInto(h, destination)).toBe(1);
  });
});

describe('a fee surge', () => {
  it('sends a fee bump of a transaction the network passes over, and settles it once', async () => {
    const h = await startPayoutHarness({
      channels: 1,
      sandbox: { ledgerCapacityOps: 4, submissionTimeoutMs: 500 },
      engine: { windowSeconds: 60, windowLedgers: 500, resubmitAfterMs: 200, feeCapStroops: 5_000n },
    });
    harness = h;
    const source = await h.customer(100_000_000n);
    const destination = await funded(h);
    const { sandbox } = h.network;
    // Other accounts keep three ledgers of capacity queued at ten times the base fee.
    const spam = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const keypair = Keypair.random();
        await fetch(`${h.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
        return keypair;
      }),
    );
    // Funding filled ledgers; let the fee statistics (last five ledgers) see a quiet network again.
    const fundedAt = sandbox.network.latestLedger().sequence;
    while (sandbox.network.latestLedger().sequence < fundedAt + 6)
      await new Promise((resolve) => setTimeout(resolve, 50));
    const frozen = sandbox.faults.add({ kind: 'freeze_ledgers' });
    const payout = await h.pay({ source, destination, amount: '1' });
    const id = String(payout.body.id);
    await h.engine.runRound();
    expect(await h.states([id])).toEqual({ [id]: 'submitted' });

    let spamming = true;
    const pending = new Map<string, string>();
    const spamLoop = (async () => {
      const sequences = new Map<string, bigint>();
      for (const keypair of spam) {
        const account = sandbox.network.account(keypair.publicKey());
        sequences.set(keypair.publicKey(), account?.sequence ?? 0n);
      }
      while (spamming) {
        for (const keypair of spam) {
          const last = pending.get(keypair.publicKey());
          if (last !== undefined && sandbox.network.isPending(last)) continue;
          const sequence = sequences.get(keypair.publicKey()) ?? 0n;
          const transaction = new TransactionBuilder(new Account(keypair.publicKey(), sequence.toString()), {
            fee: '1000',
            networkPassphrase: h.endpoints.networkPassphrase,
          })
            .addOperation(Operation.payment({ destination, asset: Asset.native(), amount: '0.0000001' }))
            .setTimeout(60)
            .build();
          transaction.sign(keypair);
          const response = await fetch(`${h.endpoints.horizonUrls[0]}/transactions_async`, {
            method: 'POST',
            body: new URLSearchParams({ tx: transaction.toEnvelope().toXDR('base64') }),
          });
          if (response.status === 201) {
            sequences.set(keypair.publicKey(), sequence + 1n);
            pending.set(keypair.publicKey(), Buffer.from(transaction.hash()).toString('hex'));
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 100));
    sandbox.faults.remove(frozen.id);
    try {
      await h.settleUntil(allSettled(h, [id]));
    } finally {
      spamming = false;
      await spamLoop;
    }
    const attempts = await h.service.db.sql<{ fee_stroops: bigint; fee_bump_stroops: bigint | null }[]>`
      select fee_stroops, fee_bump_stroops from settlement_attempts`;
    expect(attempts).toHaveLength(1);
    expect(attempts[0]?.fee_stroops).toBe(100n);
    expect(attempts[0]?.fee_bump_stroops).toBeGreaterThan(2_000n);
    const payments = (await fetch(
      `${h.endpoints.horizonUrls[0]}/accounts/${destination}/payments?limit=200`,
    ).then((r) => r.json())) as { _embedded: { records: { amount: string }[] } };
    expect(payments._embedded.records.filter((record) => record.amount === '1.0000000')).toHaveLength(1);
  });
});
