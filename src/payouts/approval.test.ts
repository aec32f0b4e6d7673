import { Horizon, Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAs, type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import type { Role } from '../platform/auth/roles.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { cancelPayout } from './service.ts';

let h: PayoutHarness;

beforeAll(async () => {
  h = await startPayoutHarness({
    env: { PAYOUT_APPROVAL_THRESHOLDS: 'XLM:5', PAYOUT_APPROVAL_DAILY_TOTALS: 'XLM:8' },
  });
});

afterAll(async () => {
  await h.close();
});

async function call(method: 'GET' | 'POST', url: string, role: Role, subject: string, payload?: object) {
  return callAs(h.service, method, url, role, subject, payload);
}

async function funded(): Promise<string> {
  const keypair = Keypair.random();
  await fetch(`${h.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair.publicKey();
}

async function onChainXlm(accountId: string): Promise<string | undefined> {
  const horizon = new Horizon.Server(h.endpoints.horizonUrls[0] ?? '', { allowHttp: true });
  const account = await horizon.loadAccount(accountId);
  return account.balances.find((balance) => balance.asset_type === 'native')?.balance;
}

async function accountBalance(id: string): Promise<bigint> {
  const [row] = await h.service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where id = ${id}::uuid`;
  return row?.balance ?? -1n;
}

/** Settlement attempts ever built for the payout, refund journals posted for it, and its events. */
async function trail(payoutId: string) {
  const sql = h.service.db.sql;
  const [row] = await sql<{ attempts: number; refunds: number; cancelledEvents: number }[]>`
    select
      (select count(*)::int from settlement_attempt_payouts where payout_id = ${payoutId}::uuid) as attempts,
      (select count(*)::int from journal_transactions where kind = 'payout_refund' and reference = ${payoutId}::text) as refunds,
      (select count(*)::int from merchant_webhook_events
        where type = 'payout.cancelled' and body like ${`%${payoutId}%`}::text) as "cancelledEvents"`;
  return row;
}

async function auditActions(payoutId: string): Promise<string[]> {
  const rows = await h.service.db.sql<{ action: string }[]>`
    select action from audit_log where subject_type = 'payout' and subject_id = ${payoutId}::text order by id`;
  return rows.map((row) => row.action);
}

/** Rounds of the engine: enough for an accepted payout to be built, submitted and settled. */
async function runRounds(count: number): Promise<void> {
  for (let round = 0; round < count; round += 1) {
    await h.engine.runRound();
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

describe('large payouts under the two-person rule', () => {
  it('holds a payout over the threshold off the chain until a second admin approves it; its proposer cannot', async () => {
    const source = await h.customer(100_000_000n);
    const destination = await funded();
    const before = await onChainXlm(destination);
    const clearingBefore = await h.balance('payout_clearing');
    const accepted = await h.pay({ source, destination, amount: '6' });
    expect(accepted.statusCode).toBe(201);
    expect(accepted.body.state).toBe('pending_approval');
    expect(accepted.body.stateReason).toContain('above the approval threshold of 5 XLM');
    const id = String(accepted.body.id);
    const proposalId = String(accepted.body.approvalProposalId);
    expect((await h.balance('payout_clearing')) - clearingBefore).toBe(60_000_000n);

    await runRounds(5);
    expect(await h.states([id])).toEqual({ [id]: 'pending_approval' });
    expect((await trail(id))?.attempts).toBe(0);
    expect(await onChainXlm(destination)).toBe(before);

    const proposal = await call('GET', `/v1/approvals/${proposalId}`, 'admin', 'bob');
    expect(proposal.body).toMatchObject({ action: 'payouts.approve_large', payload: { payoutId: id } });
    // The caller that created the payout is the proposer: an admin identity of the same subject
    // (the compromised-key case) is refused by the approvals engine.
    const self = await call('POST', `/v1/approvals/${proposalId}/approve`, 'admin', 'merchant-app', {
      payloadHash: proposal.body.payloadHash,
    });
    expect(self.statusCode).toBe(403);
    expect(self.body.type).toContain('approvals/self-approval');
    await runRounds(2);
    expect(await h.states([id])).toEqual({ [id]: 'pending_approval' });

    const approved = await call('POST', `/v1/approvals/${proposalId}/approve`, 'admin', 'bob', {
      payloadHash: proposal.body.payloadHash,
    });
    expect(approved.statusCode).toBe(200);
    expect(approved.body.state).toBe('executed');
    expect(await h.states([id])).toEqual({ [id]: 'accepted' });
    await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');
    expect(Number(await onChainXlm(destination)) - Number(before)).toBe(6);
    expect(await auditActions(id)).toEqual([
      'payout.pending_approval',
      'payout.accepted',
      'payout.approved',
      'payout.submitted',
      'payout.settled',
    ]);
  });

  it('queues a payout at or under the threshold at once', async () => {
    const source = await h.customer(100_000_000n);
    const accepted = await h.pay({ source, destination: await funded(), amount: '5' });
    expect(accepted.body).toMatchObject({ state: 'accepted', approvalProposalId: null });
  });

  it('holds a payout that takes its source over the rolling daily total', async () => {
    const source = await h.customer(200_000_000n);
    const destination = await funded();
    const first = await h.pay({ source, destination, amount: '4' });
    const second = await h.pay({ source, destination, amount: '4' });
    const third = await h.pay({ source, destination, amount: '0.5' });
    expect([first.body.state, second.body.state, third.body.state]).toEqual([
      'accepted',
      'accepted',
      'pending_approval',
    ]);
    expect(third.body.stateReason).toContain('24 h total to 8.5000000, above 8 XLM');
    // Another source has its own total.
    const other = await h.pay({ source: await h.customer(50_000_000n), destination, amount: '4' });
    expect(other.body.state).toBe('accepted');
  });

  it('refunds a rejected payout once, in one journal transaction, and never submits it', async () => {
    const source = await h.customer(100_000_000n);
    const accepted = await h.pay({ source, destination: await funded(), amount: '7' });
    const id = String(accepted.body.id);
    expect(await accountBalance(source)).toBe(30_000_000n);
    const rejected = await call(
      'POST',
      `/v1/approvals/${accepted.body.approvalProposalId}/reject`,
      'admin',
      'bob',
      {
        reason: 'the customer never pays this much',
      },
    );
    expect(rejected.statusCode).toBe(200);
    expect(rejected.body.state).toBe('rejected');
    expect(await h.states([id])).toEqual({ [id]: 'cancelled' });
    expect(await accountBalance(source)).toBe(100_000_000n);
    await runRounds(3);
    expect(await trail(id)).toEqual({ attempts: 0, refunds: 1, cancelledEvents: 1 });
    expect(await auditActions(id)).toEqual([
      'payout.pending_approval',
      'payout.cancelled',
      'payout.approval_refused',
    ]);
  });
});

describe('an expired approval', () => {
  it('refunds the payout once when its proposal expires unapproved', async () => {
    const source = await h.customer(100_000_000n);
    const accepted = await h.pay({ source, destination: await funded(), amount: '8' });
    const id = String(accepted.body.id);
    // As if the proposal's time had run out (its expiry stays after its creation).
    await h.service.db.sql`
      update proposals set created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'
      where id = ${String(accepted.body.approvalProposalId)}::uuid`;
    expect(await h.service.domains.approvals.expireDue(h.service.db.sql)).toBe(1);
    expect(await h.states([id])).toEqual({ [id]: 'cancelled' });
    expect(await accountBalance(source)).toBe(100_000_000n);
    expect(await h.service.domains.approvals.expireDue(h.service.db.sql)).toBe(0);
    await runRounds(2);
    expect(await trail(id)).toEqual({ attempts: 0, refunds: 1, cancelledEvents: 1 });
    expect(await auditActions(id)).toEqual([
      'payout.pending_approval',
      'payout.cancelled',
      'payout.approval_refused',
    ]);
  });
});

describe('cancelling queued payouts', () => {
  it('lets the service that created a payout cancel it before submission: refunded once, never submitted', async () => {
    const source = await h.customer(50_000_000n);
    const accepted = await h.pay({ source, destination: await funded(), amount: '2' });
    const id = String(accepted.body.id);
    const stranger = await call('POST', `/v1/payouts/${id}/cancel`, 'service', 'other-app', { reason: 'x' });
    expect(stranger.statusCode).toBe(404);
    const viewer = await call('POST', `/v1/payouts/${id}/cancel`, 'viewer', 'vic', { reason: 'x' });
    expect(viewer.statusCode).toBe(403);
    const noReason = await call('POST', `/v1/payouts/${id}/cancel`, 'service', 'merchant-app', {});
    expect(noReason.statusCode).toBe(400);
    expect(await h.states([id])).toEqual({ [id]: 'accepted' });

    const cancelled = await call('POST', `/v1/payouts/${id}/cancel`, 'service', 'merchant-app', {
      reason: 'customer changed their mind',
    });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.body).toMatchObject({ id, state: 'cancelled' });
    expect(await accountBalance(source)).toBe(50_000_000n);
    const again = await call('POST', `/v1/payouts/${id}/cancel`, 'operator', 'olga', { reason: 'again' });
    expect(again.statusCode).toBe(409);
    expect(again.body.type).toContain('payouts/already-cancelled');
    await runRounds(3);
    expect(await h.states([id])).toEqual({ [id]: 'cancelled' });
    expect(await trail(id)).toEqual({ attempts: 0, refunds: 1, cancelledEvents: 1 });
    expect(await accountBalance(source)).toBe(50_000_000n);
    expect(await auditActions(id)).toEqual(['payout.accepted', 'payout.cancelled']);
  });

  it('lets an operator cancel a payout waiting for approval; approving it afterwards moves nothing', async () => {
    const source = await h.customer(100_000_000n);
    const accepted = await h.pay({ source, destination: await funded(), amount: '9' });
    const id = String(accepted.body.id);
    const cancelled = await call('POST', `/v1/payouts/${id}/cancel`, 'operator', 'olga', { reason: 'fraud' });
    expect(cancelled.statusCode).toBe(200);
    const proposal = await call('GET', `/v1/approvals/${accepted.body.approvalProposalId}`, 'admin', 'bob');
    const approved = await call('POST', `/v1/approvals/${proposal.body.id}/approve`, 'admin', 'bob', {
      payloadHash: proposal.body.payloadHash,
    });
    expect(approved.statusCode).toBe(409);
    expect(approved.body.type).toContain('payouts/not-pending-approval');
    await runRounds(2);
    expect(await h.states([id])).toEqual({ [id]: 'cancelled' });
    expect(await trail(id)).toEqual({ attempts: 0, refunds: 1, cancelledEvents: 1 });
    expect(await accountBalance(source)).toBe(100_000_000n);
  });

  it('refuses to cancel a payout once a transaction paying it was built', async () => {
    const source = await h.customer(50_000_000n);
    const accepted = await h.pay({ source, destination: await funded(), amount: '1' });
    const id = String(accepted.body.id);
    await h.settleUntil(async () => (await h.states([id]))[id] === 'settled');
    const refused = await call('POST', `/v1/payouts/${id}/cancel`, 'operator', 'olga', { reason: 'late' });
    expect(refused.statusCode).toBe(409);
    expect(refused.body.type).toContain('payouts/already-submitted');
    expect(await accountBalance(source)).toBe(40_000_000n);
    expect((await trail(id))?.refunds).toBe(0);
  });

  it('keeps the engine off a payout whose cancel is in flight', async () => {
    const source = await h.customer(50_000_000n);
    const accepted = await h.pay({ source, destination: await funded(), amount: '1' });
    const id = String(accepted.body.id);
    await withTransaction(h.service.db.sql, async (tx) => {
      await cancelPayout(tx, {
        payoutId: id,
        reason: 'race',
        actor: { name: 'olga', requestId: undefined },
        ownerOnly: undefined,
      });
      // The cancel holds the payout's row lock and has not committed: the engine must skip it.
      await h.engine.runRound();
    });
    await runRounds(3);
    expect(await h.states([id])).toEqual({ [id]: 'cancelled' });
    expect(await trail(id)).toEqual({ attempts: 0, refunds: 1, cancelledEvents: 1 });
  });

  it('races cancels against the engine: each payout is either paid or refunded, never both', async () => {
    const source = await h.customer(200_000_000n);
    const destination = await funded();
    const ids: string[] = [];
    for (let index = 0; index < 6; index += 1) {
      ids.push(String((await h.pay({ source, destination, amount: '1' })).body.id));
    }
    const cancels = await Promise.all([
      h.engine.runRound(),
      ...ids.map((id) => call('POST', `/v1/payouts/${id}/cancel`, 'operator', 'olga', { reason: 'race' })),
    ]);
    const answers = cancels.slice(1) as { statusCode: number; body: { type?: string } }[];
    await h.settleUntil(async () =>
      Object.values(await h.states(ids)).every((state) => state === 'settled' || state === 'cancelled'),
    );
    const states = await h.states(ids);
    let cancelledMinor = 0n;
    for (const [index, id] of ids.entries()) {
      const answer = answers[index];
      const record = await trail(id);
      if (answer?.statusCode === 200) {
        expect(states[id]).toBe('cancelled');
        expect(record).toEqual({ attempts: 0, refunds: 1, cancelledEvents: 1 });
        cancelledMinor += 10_000_000n;
      } else {
        expect(answer?.statusCode).toBe(409);
        expect(answer?.body.type).toContain('payouts/already-submitted');
        expect(states[id]).toBe('settled');
        expect(record?.refunds).toBe(0);
      }
    }
    expect(await accountBalance(source)).toBe(140_000_000n + cancelledMinor);
  });
});
