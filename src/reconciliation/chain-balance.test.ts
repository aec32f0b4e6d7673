import { Asset, Keypair, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import type { ChainAccess, ReconciliationSettings } from './context.ts';
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

async function pay(from: Keypair, destination: string, amount: string): Promise<void> {
  const account = await h.network.horizon.loadAccount(from.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: '100',
    networkPassphrase: h.endpoints.networkPassphrase,
  })
    .addOperation(Operation.payment({ destination, asset: Asset.native(), amount }))
    .setTimeout(30)
    .build();
  transaction.sign(from);
  await h.network.horizon.submitTransaction(transaction);
}

async function funded(): Promise<Keypair> {
  const keypair = Keypair.random();
  await fetch(`${h.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair;
}

/** outgoing_payments first (it reports what left without a posting), then chain_balance. */
async function reconcile(settings: Partial<ReconciliationSettings> = {}) {
  await runDetector(testDeps(h.service.db.sql, { chain, settings }), 'outgoing_payments');
  return runDetector(testDeps(h.service.db.sql, { chain, settings }), 'chain_balance');
}

async function baseline(): Promise<string | undefined> {
  const [row] = await h.service.db.sql<{ baseline: string | null }[]>`
    select state -> 'baselines' ->> 'XLM' as baseline from reconciliation_checkpoints where detector = 'chain_balance'`;
  return row?.baseline ?? undefined;
}

describe('chain_balance', () => {
  it('waits for outgoing_payments before taking its baseline, then reports nothing while payouts settle', async () => {
    await runDetector(testDeps(h.service.db.sql, { chain }), 'chain_balance');
    expect(await baseline()).toBeUndefined();

    expect(await reconcile()).toMatchObject({ outcome: 'completed', findings: { created: 0 } });
    const account = await h.network.horizon.loadAccount(chain.hotWallet);
    const native = account.balances.find((line) => line.asset_type === 'native');
    // Nothing booked yet: the baseline is the friendbot funding.
    expect(await baseline()).toBe(BigInt((native?.balance ?? '0').replace('.', '')).toString());

    const destination = (await funded()).publicKey();
    const payout = await h.pay({ source, destination, amount: '12.5' });
    const id = String(payout.body.id);
    await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');
    expect(await reconcile()).toMatchObject({ scanned: 1, findings: { created: 0 } });
    expect(await openFindings(h.service.db.sql, 'chain_ledger_drift')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'chain_ledger_drift' })).toBe(0);
  });

  it('finds money gone from the hot wallet without a posting, after the grace period, and resolves it when it is back', async () => {
    const createdBefore = await metric('reconciliation_findings_total', { kind: 'chain_ledger_drift' });
    const stranger = await funded();
    await pay(h.wallet.hotWallet, stranger.publicKey(), '30');

    // Within the grace period: remembered, not reported.
    await reconcile({ chainDriftGraceSeconds: 3_600 });
    expect(await openFindings(h.service.db.sql, 'chain_ledger_drift')).toEqual([]);

    const report = await reconcile({ chainDriftGraceSeconds: 0 });
    expect(report.findings.created).toBe(1);
    const [finding] = await openFindings(h.service.db.sql, 'chain_ledger_drift');
    expect(finding?.subject).toBe('XLM');
    expect(finding?.evidence).toMatchObject({
      asset: 'XLM',
      drift: '-30.0000000',
      inFlightPayouts: '0.0000000',
    });
    const evidence = finding?.evidence as {
      chainBalance: string;
      expectedChainBalance: string;
      settlementBalance: string;
    };
    expect(evidence.settlementBalance).toBe('12.5000000');
    expect(Number(evidence.expectedChainBalance) - Number(evidence.chainBalance)).toBe(30);
    expect(await metric('reconciliation_findings_total', { kind: 'chain_ledger_drift' })).toBe(
      createdBefore + 1,
    );
    expect(await metric('reconciliation_findings_open', { kind: 'chain_ledger_drift' })).toBe(1);

    await pay(stranger, chain.hotWallet, '30');
    const back = await reconcile();
    expect(back.findings.resolved).toBe(1);
    expect(await openFindings(h.service.db.sql, 'chain_ledger_drift')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'chain_ledger_drift' })).toBe(0);
  });

  it('allows a shortfall up to the payouts in flight, whose payment may have left before they are booked', async () => {
    // Funded before the freeze: an account still queued for creation would be created by the payout.
    const destination = (await funded()).publicKey();
    const frozen = h.network.sandbox.faults.add({ kind: 'freeze_ledgers' });
    const payout = await h.pay({ source, destination, amount: '5' });
    const id = String(payout.body.id);
    await h.engine.runRound();
    expect(await h.states([id])).toEqual({ [id]: 'submitted' });
    h.network.sandbox.faults.remove(frozen.id);
    // Applied on chain; the engine has not looked it up yet, so the ledger still has it in flight.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const [attempt] = await h.service.db.sql<{ hash: string }[]>`
        select a.hash from settlement_attempts a join settlement_attempt_payouts ap on ap.attempt_id = a.id
        where ap.payout_id = ${id}::uuid`;
      const seen = await fetch(`${h.endpoints.horizonUrls[0]}/transactions/${attempt?.hash ?? ''}`);
      if (seen.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await h.states([id])).toEqual({ [id]: 'submitted' });
    const report = await reconcile();
    expect(report.findings.created).toBe(0);
    await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');
    expect((await reconcile()).findings.created).toBe(0);
  });
});
