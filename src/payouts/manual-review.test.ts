import { randomUUID } from 'node:crypto';
import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAs, type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import type { Role } from '../platform/auth/roles.ts';
import { registry } from '../platform/metrics.ts';

let h: PayoutHarness;

beforeAll(async () => {
  h = await startPayoutHarness({
    engine: { windowSeconds: 2, manualReviewAfterMs: 300, resubmitAfterMs: 600_000 },
  });
});

afterAll(async () => {
  await h.close();
});

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return found
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

async function call(method: 'GET' | 'POST', url: string, role: Role, subject: string, payload?: object) {
  return callAs(h.service, method, url, role, subject, payload);
}

async function resolve(id: string, decision: 'confirm_sent' | 'refund_failed') {
  const proposed = await call('POST', `/v1/payouts/${id}/resolve`, 'admin', 'ada', {
    decision,
    reason: 'checked the hot wallet history on stellar.expert',
  });
  expect(proposed.statusCode).toBe(202);
  expect(await h.states([id])).toEqual({ [id]: 'manual_review' });
  const self = await call('POST', `/v1/approvals/${proposed.body.id}/approve`, 'admin', 'ada', {
    payloadHash: proposed.body.payloadHash,
  });
  expect(self.statusCode).toBe(403);
  const approved = await call('POST', `/v1/approvals/${proposed.body.id}/approve`, 'admin', 'bob', {
    payloadHash: proposed.body.payloadHash,
  });
  expect(approved.statusCode).toBe(200);
  expect(approved.body.state).toBe('executed');
}

describe('manual review', () => {
  it('queues payouts whose outcome cannot be determined, and resolves each once under the two-person rule', async () => {
    const source = await h.customer(120_000_000n);
    const destination = Keypair.random().publicKey();
    await fetch(`${h.endpoints.friendbotUrl}?addr=${destination}`);
    // Warm up both channels, so the engine knows their next sequence numbers without asking.
    const warmUp: string[] = [];
    for (const memo of ['warm 1', 'warm 2']) {
      warmUp.push(
        String(
          (await h.pay({ source, destination, amount: '1', memo: { type: 'text', value: memo } })).body.id,
        ),
      );
    }
    await h.settleUntil(async () =>
      Object.values(await h.states(warmUp)).every((state) => state === 'settled'),
    );
    const { faults } = h.network.sandbox;
    // The submission applies but its answer is lost, Horizon lags far behind, and RPC is down:
    // nothing can show whether the payment happened or prove that it never can.
    faults.add({ kind: 'accepted_timeout', route: 'horizon.submit' });
    faults.add({ kind: 'stale_ingestion', lagLedgers: 64 });
    faults.add({ kind: 'http_error', status: 503, route: 'rpc' });
    const ids: string[] = [];
    for (const memo of ['first', 'second']) {
      const payout = await h.pay({ source, destination, amount: '1', memo: { type: 'text', value: memo } });
      ids.push(String(payout.body.id));
    }
    const entered = await metric('payout_manual_review_transitions_total', { action: 'entered' });
    await h.settleUntil(async () =>
      Object.values(await h.states(ids)).every((state) => state === 'manual_review'),
    );
    await h.engine.runRound();
    expect(await metric('payout_manual_review_queue_size')).toBe(2);
    expect(await metric('payout_manual_review_transitions_total', { action: 'entered' })).toBe(entered + 2);
    faults.clear();

    const queue = await call('GET', '/v1/payouts/manual-review?limit=50&offset=0', 'viewer', 'vic');
    expect(queue.statusCode).toBe(200);
    expect(queue.body.items.map((item: { id: string }) => item.id).sort()).toEqual([...ids].sort());
    const [confirmId = '', refundId = ''] = ids;

    const clearingBefore = await h.balance('payout_clearing');
    const settlementBefore = await h.balance('settlement');
    await resolve(confirmId, 'confirm_sent');
    await resolve(refundId, 'refund_failed');
    expect(await h.states(ids)).toEqual({ [confirmId]: 'settled', [refundId]: 'failed' });
    expect(clearingBefore - (await h.balance('payout_clearing'))).toBe(20_000_000n);
    expect((await h.balance('settlement')) - settlementBefore).toBe(10_000_000n);
    const [account] = await h.service.db.sql<{ balance: bigint }[]>`
      select balance_minor as balance from accounts where id = ${source}::uuid`;
    expect(account?.balance).toBe(90_000_000n);
    expect(await metric('payout_manual_review_transitions_total', { action: 'confirm_sent' })).toBe(1);
    expect(await metric('payout_manual_review_transitions_total', { action: 'refund_failed' })).toBe(1);

    const again = await call('POST', `/v1/payouts/${confirmId}/resolve`, 'admin', 'ada', {
      decision: 'refund_failed',
      reason: 'second thoughts',
    });
    expect(again.statusCode).toBe(409);
    expect(again.body.type).toContain('payouts/not-in-manual-review');
    await h.engine.runRound();
    expect(await metric('payout_manual_review_queue_size')).toBe(0);
  });

  it('does not let a viewer or a service propose a resolution', async () => {
    const viewer = await call('POST', `/v1/payouts/${randomUUID()}/resolve`, 'viewer', 'vic', {
      decision: 'confirm_sent',
      reason: 'x',
    });
    expect(viewer.statusCode).toBe(403);
  });
});
