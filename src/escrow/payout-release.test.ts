import { randomUUID } from 'node:crypto';
import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import { runDetector } from '../reconciliation/runner.ts';
import { openFindings, testDeps } from '../reconciliation/test-support.ts';

let h: PayoutHarness;

beforeAll(async () => {
  h = await startPayoutHarness();
});

afterAll(async () => {
  await h.close();
});

async function call(method: 'GET' | 'POST', url: string, payload?: object) {
  return h.service.app.inject({
    method,
    url,
    payload,
    headers: {
      authorization: `Bearer ${await h.service.token(method === 'GET' ? 'operator' : 'service', 'merchant-app')}`,
      ...(method === 'POST' ? { 'idempotency-key': randomUUID() } : {}),
    },
  });
}

async function funded(): Promise<string> {
  const keypair = Keypair.random();
  await fetch(`${h.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair.publicKey();
}

async function balanceOf(id: string): Promise<bigint> {
  const [row] = await h.service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where id = ${id}::uuid`;
  return row?.balance ?? -1n;
}

/** A hold of 5 XLM from a funded payer to a payee with nothing. */
async function hold(): Promise<{ id: string; payer: string; payee: string }> {
  const payer = await h.customer(100_000_000n);
  const [row] = await h.service.db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  const payee = row?.id ?? '';
  const response = await call('POST', '/v1/escrow/holds', {
    payerAccountId: payer,
    payeeAccountId: payee,
    asset: 'XLM',
    amount: '5',
  });
  expect(response.statusCode, response.body).toBe(201);
  return { id: String(response.json().id), payer, payee };
}

async function payoutOfRelease(holdId: string): Promise<string> {
  const detail = (await call('GET', `/v1/escrow/holds/${holdId}`)).json();
  const payoutId = detail.movements.at(-1)?.payoutId;
  expect(payoutId).toEqual(expect.any(String));
  return String(payoutId);
}

const stuckNow = { settings: { stuckReleaseAfterSeconds: 0 } };

describe('a release to a Stellar address', () => {
  it('moves escrow to the payee and on through a payout in one transaction; the payout settles on chain', async () => {
    const { id, payee } = await hold();
    const clearingBefore = await h.balance('payout_clearing');
    const escrowBefore = await h.balance('escrow');
    const destination = await funded();
    const released = await call('POST', `/v1/escrow/holds/${id}/releases`, { amount: '2', destination });
    expect(released.statusCode, released.body).toBe(200);
    expect(released.json()).toMatchObject({ released: '2.0000000', remaining: '3.0000000' });
    const payoutId = await payoutOfRelease(id);
    const [payout] = await h.service.db.sql<{ source: string; destination: string; amount: bigint }[]>`
      select source_account_id as source, destination, amount_minor as amount from payouts where id = ${payoutId}::uuid`;
    expect(payout).toEqual({ source: payee, destination, amount: 20_000_000n });
    // escrow → payee → payout_clearing: the payee keeps nothing, clearing holds the payout.
    expect(await balanceOf(payee)).toBe(0n);
    expect(await h.balance('escrow')).toBe(escrowBefore - 20_000_000n);
    expect(await h.balance('payout_clearing')).toBe(clearingBefore + 20_000_000n);
    const [audit] = await h.service.db.sql<{ after: { payoutId: string } }[]>`
      select after from audit_log where subject_id = ${id} and action = 'escrow.released'`;
    expect(audit?.after.payoutId).toBe(payoutId);

    await h.settleUntil(async () => (await h.states([payoutId]))[payoutId] === 'settled');
    await runDetector(testDeps(h.service.db.sql, stuckNow), 'escrow');
    expect(await openFindings(h.service.db.sql, 'stuck_release')).toEqual([]);
  });

  it('a destination the payouts path refuses moves nothing and leaves the hold as it was', async () => {
    const { id, payee } = await hold();
    const escrowBefore = await h.balance('escrow');
    const refused = await call('POST', `/v1/escrow/holds/${id}/releases`, {
      amount: '2',
      destination: `G${'A'.repeat(55)}`,
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().type).toContain('payouts/');
    const detail = (await call('GET', `/v1/escrow/holds/${id}`)).json();
    expect(detail).toMatchObject({ state: 'held', remaining: '5.0000000', movements: [] });
    expect(await balanceOf(payee)).toBe(0n);
    expect(await h.balance('escrow')).toBe(escrowBefore);
  });

  it('a release to an address on a disputed hold is refused, recorded, and creates no payout', async () => {
    const { id, payee } = await hold();
    const disputed = await call('POST', `/v1/escrow/holds/${id}/disputes`, { reason: 'not delivered' });
    expect(disputed.statusCode, disputed.body).toBe(201);
    const escrowBefore = await h.balance('escrow');
    const refused = await call('POST', `/v1/escrow/holds/${id}/releases`, { destination: await funded() });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().type).toContain('escrow/hold-disputed');
    const [payouts] = await h.service.db.sql<{ count: number }[]>`
      select count(*)::int as count from payouts where source_account_id = ${payee}::uuid`;
    expect(payouts?.count).toBe(0);
    expect(await h.balance('escrow')).toBe(escrowBefore);
    const [attempt] = await h.service.db.sql<{ count: number }[]>`
      select count(*)::int as count from security_events
      where kind = 'escrow.disputed_hold_attempt' and detail ->> 'holdId' = ${id}`;
    expect(attempt?.count).toBe(1);
  });

  it('a release not settled within its threshold is a stuck_release finding, shown in triage, resolved once it settles', async () => {
    const { id } = await hold();
    const destination = await funded();
    const released = await call('POST', `/v1/escrow/holds/${id}/releases`, { destination });
    expect(released.statusCode, released.body).toBe(200);
    expect(released.json()).toMatchObject({ state: 'closed', remaining: '0.0000000' });
    const payoutId = await payoutOfRelease(id);

    // Younger than the threshold: not stuck yet.
    await runDetector(
      testDeps(h.service.db.sql, { settings: { stuckReleaseAfterSeconds: 3_600 } }),
      'escrow',
    );
    expect(await openFindings(h.service.db.sql, 'stuck_release')).toEqual([]);

    const report = await runDetector(testDeps(h.service.db.sql, stuckNow), 'escrow');
    expect(report.findings.created).toBe(1);
    const [finding] = await openFindings(h.service.db.sql, 'stuck_release');
    expect(finding).toMatchObject({
      subject: payoutId,
      evidence: { holdId: id, payoutId, payoutState: 'accepted', destination, amount: '5.0000000' },
    });
    const triage = (await call('GET', '/internal/incident/escrow-leaks')).json();
    expect(triage.leaking).toBe(false);
    expect(triage.findings).toEqual([expect.objectContaining({ kind: 'stuck_release', subject: payoutId })]);

    await h.settleUntil(async () => (await h.states([payoutId]))[payoutId] === 'settled');
    await runDetector(testDeps(h.service.db.sql, stuckNow), 'escrow');
    expect(await openFindings(h.service.db.sql, 'stuck_release')).toEqual([]);
  });
});
