import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import { runDetector } from './runner.ts';
import { metric, openFindings, testDeps } from './test-support.ts';

let h: PayoutHarness;
let source: string;

beforeAll(async () => {
  // A wide window: while the ledger is frozen the attempt stays live instead of expiring.
  h = await startPayoutHarness({
    engine: { windowSeconds: 120, windowLedgers: 1_000, resubmitAfterMs: 200 },
  });
  source = await h.customer(1_000_000_000n);
});

afterAll(async () => {
  await h.close();
});

async function funded(): Promise<string> {
  const keypair = Keypair.random();
  await fetch(`${h.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair.publicKey();
}

const stuckNow = { settings: { stuckAfterSeconds: 0 } };

describe('stuck_settlements', () => {
  it('reports nothing when every payout has settled', async () => {
    const payout = await h.pay({ source, destination: await funded(), amount: '2' });
    const id = String(payout.body.id);
    await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');
    const report = await runDetector(testDeps(h.service.db.sql, stuckNow), 'stuck_settlements');
    expect(report).toMatchObject({ outcome: 'completed', scanned: 0, findings: { created: 0 } });
    expect(await openFindings(h.service.db.sql, 'stuck_settlement')).toEqual([]);
    expect(await metric('payouts_stuck')).toBe(0);
  });

  it('finds a payout held submitted by a frozen ledger, by state, and resolves it once it settles', async () => {
    // Funded before the freeze: an account still queued for creation would be created by the payout.
    const destination = await funded();
    const frozen = h.network.sandbox.faults.add({ kind: 'freeze_ledgers' });
    const payout = await h.pay({ source, destination, amount: '3' });
    const id = String(payout.body.id);
    for (let round = 0; round < 5; round += 1) await h.engine.runRound();
    expect(await h.states([id])).toEqual({ [id]: 'submitted' });

    // Younger than the threshold: not stuck yet.
    await runDetector(
      testDeps(h.service.db.sql, { settings: { stuckAfterSeconds: 3_600 } }),
      'stuck_settlements',
    );
    expect(await openFindings(h.service.db.sql, 'stuck_settlement')).toEqual([]);
    expect(await metric('payouts_stuck', { state: 'submitted' })).toBe(0);

    const createdBefore = await metric('reconciliation_findings_total', { kind: 'stuck_settlement' });
    const report = await runDetector(testDeps(h.service.db.sql, stuckNow), 'stuck_settlements');
    expect(report.findings.created).toBe(1);
    const [finding] = await openFindings(h.service.db.sql, 'stuck_settlement');
    expect(finding).toMatchObject({
      subject: id,
      evidence: { payoutId: id, state: 'submitted', amount: '3.0000000' },
    });
    expect(await metric('payouts_stuck', { state: 'submitted' })).toBe(1);
    expect(await metric('payouts_stuck', { state: 'accepted' })).toBe(0);
    expect(await metric('reconciliation_findings_total', { kind: 'stuck_settlement' })).toBe(
      createdBefore + 1,
    );
    expect(await metric('reconciliation_findings_open', { kind: 'stuck_settlement' })).toBe(1);

    h.network.sandbox.faults.remove(frozen.id);
    await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');
    const after = await runDetector(testDeps(h.service.db.sql, stuckNow), 'stuck_settlements');
    expect(after.findings.resolved).toBe(1);
    expect(await openFindings(h.service.db.sql, 'stuck_settlement')).toEqual([]);
    expect(await metric('payouts_stuck', { state: 'submitted' })).toBe(0);
    expect(await metric('reconciliation_findings_open', { kind: 'stuck_settlement' })).toBe(0);
  });
});
