import { randomBytes, randomUUID } from 'node:crypto';
import { Asset, Keypair, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import { buildFeeBump } from '../payouts/builder.ts';
import type { ChainAccess } from './context.ts';
import { runDetector } from './runner.ts';
import { metric, openFindings, testDeps } from './test-support.ts';

let h: PayoutHarness;
let source: string;
let chain: ChainAccess;

beforeAll(async () => {
  h = await startPayoutHarness();
  source = await h.customer(1_000_000_000n);
  chain = { horizonUrls: h.endpoints.horizonUrls, hotWallet: h.wallet.hotWallet.publicKey() };
});

afterAll(async () => {
  await h.close();
});

async function funded(): Promise<string> {
  const keypair = Keypair.random();
  await fetch(`${h.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair.publicKey();
}

/** Money sent straight from the hot wallet with the SDK, as someone holding its key could. */
async function sendFromHotWallet(operation: ReturnType<typeof Operation.payment>): Promise<string> {
  const hot = h.wallet.hotWallet;
  const account = await h.network.horizon.loadAccount(hot.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: '100',
    networkPassphrase: h.endpoints.networkPassphrase,
  })
    .addOperation(operation)
    .setTimeout(30)
    .build();
  transaction.sign(hot);
  const result = await h.network.horizon.submitTransaction(transaction);
  return result.hash;
}

async function settledPayout(destination: string, amount: string): Promise<string> {
  const payout = await h.pay({ source, destination, amount });
  const id = String(payout.body.id);
  await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');
  return id;
}

async function unbookedFees(): Promise<bigint> {
  const [row] = await h.service.db.sql<{ fees: string | null }[]>`
    select state -> 'unbookedStroops' ->> 'XLM' as fees from reconciliation_checkpoints
    where detector = 'outgoing_payments'`;
  return BigInt(row?.fees ?? '0');
}

const run = () => runDetector(testDeps(h.service.db.sql, { chain }), 'outgoing_payments');

describe('outgoing_payments', () => {
  it('explains every payment of settled payouts, and the creation of a new account for one, and reports nothing', async () => {
    const destination = await funded();
    const ids = [
      await settledPayout(destination, '1.5'),
      await settledPayout(await funded(), '2'),
      // XLM to an address that does not exist yet settles as a create_account from the hot wallet.
      await settledPayout(Keypair.random().publicKey(), '2.5'),
    ];
    const report = await run();
    expect(report).toMatchObject({ outcome: 'completed', findings: { created: 0 } });
    expect(report.scanned).toBeGreaterThanOrEqual(3);
    const attributed = await h.service.db.sql<{ payoutId: string; attribution: string }[]>`
      select payout_id as "payoutId", attribution from reconciliation_payout_payments order by paging_token`;
    expect(attributed).toEqual(ids.map((payoutId) => ({ payoutId, attribution: 'attempt' })));
    expect(await openFindings(h.service.db.sql, 'double_payout')).toEqual([]);
    expect(await openFindings(h.service.db.sql, 'unknown_outgoing_payment')).toEqual([]);
    // Nothing new since: a second run reads nothing and reports nothing.
    expect(await run()).toMatchObject({ scanned: 0, findings: { created: 0 } });
  });

  it('finds a double payout when the hot wallet pays a settled payout again outside the engine', async () => {
    const destination = await funded();
    const id = await settledPayout(destination, '4.25');
    await run();
    const createdBefore = await metric('reconciliation_findings_total', { kind: 'double_payout' });
    const hash = await sendFromHotWallet(
      Operation.payment({ destination, asset: Asset.native(), amount: '4.25' }),
    );

    const report = await run();
    expect(report.findings.created).toBe(1);
    const [finding] = await openFindings(h.service.db.sql, 'double_payout');
    expect(finding?.subject).toBe(id);
    expect(finding?.evidence).toMatchObject({
      destination,
      asset: 'XLM',
      amount: '4.2500000',
      payoutState: 'settled',
    });
    const { payments } = (finding?.evidence ?? { payments: [] }) as {
      payments: { transactionHash: string; attribution: string }[];
    };
    expect(payments.map((payment) => payment.attribution)).toEqual(['attempt', 'likeness']);
    expect(payments[1]?.transactionHash).toBe(hash);
    expect(await metric('reconciliation_findings_total', { kind: 'double_payout' })).toBe(createdBefore + 1);
    expect(await metric('reconciliation_findings_open', { kind: 'double_payout' })).toBe(1);
    expect(await openFindings(h.service.db.sql, 'unknown_outgoing_payment')).toEqual([]);
  });

  it('reports a payment and an account creation no payout explains as unknown outgoing payments', async () => {
    const createdBefore = await metric('reconciliation_findings_total', { kind: 'unknown_outgoing_payment' });
    const stranger = await funded();
    const paid = await sendFromHotWallet(
      Operation.payment({ destination: stranger, asset: Asset.native(), amount: '7' }),
    );
    const created = await sendFromHotWallet(
      Operation.createAccount({ destination: Keypair.random().publicKey(), startingBalance: '3' }),
    );
    const report = await run();
    expect(report.findings.created).toBe(2);
    const findings = await openFindings(h.service.db.sql, 'unknown_outgoing_payment');
    const byHash = Object.fromEntries(
      findings.map((finding) => [(finding.evidence as { transactionHash: string }).transactionHash, finding]),
    );
    expect(byHash[paid]?.evidence).toMatchObject({
      type: 'payment',
      destination: stranger,
      asset: 'XLM',
      amount: '7.0000000',
    });
    expect(byHash[created]?.evidence).toMatchObject({ type: 'create_account', amount: '3.0000000' });
    expect(await metric('reconciliation_findings_total', { kind: 'unknown_outgoing_payment' })).toBe(
      createdBefore + 2,
    );
    expect(await metric('reconciliation_findings_open', { kind: 'unknown_outgoing_payment' })).toBe(2);
    // Seen once, kept open: running again neither duplicates nor resolves them.
    await run();
    expect(await openFindings(h.service.db.sql, 'unknown_outgoing_payment')).toHaveLength(2);
  });

  it('matches a payout settled by a fee bump of its transaction (outer hash on chain, inner hash stored)', async () => {
    const { faults } = h.network.sandbox;
    // The engine's own submissions do not get through, so the fee bump is what reaches the network.
    const blocked = [
      faults.add({ kind: 'http_error', status: 503, route: 'horizon.submit' }),
      faults.add({ kind: 'http_error', status: 503, route: 'horizon.submit_async' }),
      faults.add({ kind: 'http_error', status: 503, route: 'rpc' }),
    ];
    const payout = await h.pay({ source, destination: await funded(), amount: '0.5' });
    const id = String(payout.body.id);
    await h.engine.runRound();
    const [attempt] = await h.service.db.sql<{ envelopeXdr: string }[]>`
      select a.envelope_xdr as "envelopeXdr" from settlement_attempts a
      join settlement_attempt_payouts ap on ap.attempt_id = a.id where ap.payout_id = ${id}::uuid`;
    const bump = buildFeeBump({
      hotWallet: h.wallet.hotWallet,
      envelopeXdr: attempt?.envelopeXdr ?? '',
      feePerOperationStroops: 1_000n,
      networkPassphrase: h.endpoints.networkPassphrase,
    });
    expect(h.network.sandbox.network.submit(bump.envelopeXdr).status).toBe('pending');
    for (const fault of blocked) faults.remove(fault.id);
    await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');

    const feesBefore = await unbookedFees();
    const report = await run();
    expect(report.findings.created).toBe(0);
    const [attributed] = await h.service.db.sql<{ attribution: string; hash: string }[]>`
      select p.attribution, a.hash from reconciliation_payout_payments p
      join settlement_attempt_payouts ap on ap.payout_id = p.payout_id
      join settlement_attempts a on a.id = ap.attempt_id
      where p.payout_id = ${id}::uuid`;
    expect(attributed?.attribution).toBe('attempt');
    const onChain = h.network.sandbox.network.transaction(attributed?.hash ?? '');
    expect(onChain?.innerHash).toBe(attributed?.hash);
    expect(onChain?.hash).not.toBe(attributed?.hash);
    // The hot wallet paid the fee bump: money that left without a posting.
    expect(await unbookedFees()).toBe(feesBefore + (onChain?.feeChargedStroops ?? 0n));
  });

  it('finds from the database alone a payout that two settlement attempts paid', async () => {
    const id = await settledPayout(await funded(), '1');
    const [channel] = await h.service.db.sql<{ accountId: string }[]>`
      select account_id as "accountId" from payout_channels limit 1`;
    const attemptId = randomUUID();
    const hash = randomBytes(32).toString('hex');
    // What an engine that lost track of an attempt and rebuilt the payout would leave behind.
    await h.service.db.sql`
      insert into settlement_attempts (id, channel_account_id, source_sequence, hash, envelope_xdr, fee_stroops,
                                       max_time, max_ledger, state, resolved_at)
      values (${attemptId}::uuid, ${channel?.accountId ?? ''}, 1, ${hash}, 'AAAA', 100, 0, 0, 'succeeded', now())`;
    await h.service.db.sql`
      insert into settlement_attempt_payouts (attempt_id, payout_id, operation_index, live)
      values (${attemptId}::uuid, ${id}::uuid, 0, false)`;
    await run();
    const [finding] = (await openFindings(h.service.db.sql, 'double_payout')).filter(
      (row) => row.subject === id,
    );
    const { succeededAttempts } = (finding?.evidence ?? { succeededAttempts: [] }) as {
      succeededAttempts: string[];
    };
    expect(succeededAttempts).toHaveLength(2);
    expect(succeededAttempts).toContain(hash);
  });

  it('reads the whole history again with a full run and finds the same, once', async () => {
    const before = await openFindings(h.service.db.sql, 'unknown_outgoing_payment');
    const report = await runDetector(testDeps(h.service.db.sql, { chain }), 'outgoing_payments', {
      full: true,
    });
    expect(report).toMatchObject({ outcome: 'completed', findings: { created: 0 } });
    expect(await openFindings(h.service.db.sql, 'unknown_outgoing_payment')).toHaveLength(before.length);
  });
});
