import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PayoutHarness, startPayoutHarness } from '../../test/support/payouts.ts';
import { creditDeposit } from '../deposits/credit.ts';
import type { Sql } from '../platform/db/types.ts';
import { deliverTask, deliveryJobKeyPrefix } from './events.ts';
import { depositInput, merchantAccount, registerEndpoint } from './test-support.ts';

let harness: PayoutHarness;
let sql: Sql;

beforeAll(async () => {
  harness = await startPayoutHarness();
  sql = harness.service.db.sql;
});

afterAll(async () => {
  await harness.close();
});

type EventRow = { id: string; type: string; body: string };

async function eventsAbout(accountId: string): Promise<EventRow[]> {
  return sql<EventRow[]>`
    select id, type, body from merchant_webhook_events where account_id = ${accountId}::uuid order by created_at, id`;
}

async function deliveryEndpoints(eventId: string): Promise<string[]> {
  const rows = await sql<{ endpointId: string; key: string | null }[]>`
    select d.endpoint_id as "endpointId", j.key
    from merchant_webhook_deliveries d
    left join graphile_worker.jobs j on j.key = ${deliveryJobKeyPrefix}::text || d.id::text
    where d.event_id = ${eventId}::uuid`;
  // Every delivery has its job, keyed by the delivery id.
  for (const row of rows) expect(row.key).not.toBeNull();
  return rows.map((row) => row.endpointId).sort();
}

async function deliveryJobs(): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from graphile_worker.jobs where task_identifier = ${deliverTask}::text`;
  return row?.count ?? 0;
}

async function funded(): Promise<string> {
  const keypair = Keypair.random();
  await fetch(`${harness.endpoints.friendbotUrl}?addr=${keypair.publicKey()}`);
  return keypair.publicKey();
}

describe('events are written in the transaction of the change', () => {
  it('leaves no event, delivery or job behind when the deposit credit rolls back', async () => {
    const accountId = await merchantAccount(sql, 'rollback-co');
    const endpoint = await registerEndpoint(harness.service, {
      url: 'https://merchant.example/hooks',
      eventTypes: ['deposit.credited'],
      ownerRef: 'rollback-co',
    });
    const jobsBefore = await deliveryJobs();
    const failure = new Error('something after the credit failed');
    await expect(
      sql.begin(async (tx) => {
        const credit = await creditDeposit(tx, depositInput(accountId, '5'));
        expect(credit.kind).toBe('credited');
        const [inside] = await tx<{ count: number }[]>`
          select count(*)::int as count from merchant_webhook_deliveries where endpoint_id = ${endpoint.id}::uuid`;
        expect(inside?.count).toBe(1);
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await eventsAbout(accountId)).toEqual([]);
    const deliveries =
      await sql`select 1 from merchant_webhook_deliveries where endpoint_id = ${endpoint.id}::uuid`;
    expect(deliveries).toHaveLength(0);
    expect(await deliveryJobs()).toBe(jobsBefore);
  });

  it('writes exactly one deposit.credited event per credit, fanned out to the matching endpoints only', async () => {
    const accountId = await merchantAccount(sql, 'acme');
    const all = await registerEndpoint(harness.service, {
      url: 'https://platform.example/hooks',
      eventTypes: ['deposit.credited', 'payout.settled'],
      ownerRef: null,
    });
    const acme = await registerEndpoint(harness.service, {
      url: 'https://acme.example/hooks',
      eventTypes: ['deposit.credited'],
      ownerRef: 'acme',
    });
    const other = await registerEndpoint(harness.service, {
      url: 'https://other.example/hooks',
      eventTypes: ['deposit.credited'],
      ownerRef: 'someone-else',
    });
    const payoutsOnly = await registerEndpoint(harness.service, {
      url: 'https://acme.example/payouts',
      eventTypes: ['payout.failed'],
      ownerRef: 'acme',
    });
    const input = depositInput(accountId, '2.5');
    const credit = await sql.begin((tx) => creditDeposit(tx, input));
    // The provider sends the same deposit again: a replay, which is not a new event.
    const replay = await sql.begin((tx) => creditDeposit(tx, input));
    expect(replay.kind).toBe('replay');

    const events = await eventsAbout(accountId);
    expect(events.map((event) => event.type)).toEqual(['deposit.credited']);
    const body = JSON.parse(events[0]?.body ?? '{}');
    expect(body).toMatchObject({
      type: 'deposit.credited',
      data: {
        depositId: credit.deposit.id,
        accountId,
        asset: 'XLM',
        amount: '2.5000000',
        reference: input.reference,
        provider: 'stellar',
      },
    });
    expect(Number.isNaN(Date.parse(body.timestamp))).toBe(false);
    const endpoints = await deliveryEndpoints(events[0]?.id ?? '');
    expect(endpoints).toEqual([all.id, acme.id].sort());
    expect(endpoints).not.toContain(other.id);
    expect(endpoints).not.toContain(payoutsOnly.id);
  });

  it('writes exactly one payout.settled for a settled payout and one payout.failed for a refunded one', async () => {
    const source = await harness.customer(100_000_000n);
    const missing = Keypair.random().publicKey();
    const settled = await harness.pay({ source, destination: await funded(), amount: '1.5' });
    const failed = await harness.pay({ source, destination: missing, amount: '2' });
    const ids = [String(settled.body.id), String(failed.body.id)];
    // The build reads the missing account as existing (as if merged after the read), so it is
    // paid, not created, and the network refuses that payment for good.
    const stale = harness.engineWith({
      ...harness.chain,
      destination: async () => ({ kind: 'exists', trusted: true }),
    });
    await harness.settleUntil(
      async () => {
        const states = Object.values(await harness.states(ids));
        return states.length === 2 && states.every((state) => state === 'settled' || state === 'failed');
      },
      undefined,
      stale,
    );
    expect(await harness.states(ids)).toEqual({ [ids[0] ?? '']: 'settled', [ids[1] ?? '']: 'failed' });
    // More rounds change nothing: a payout is settled or failed once, so its event is written once.
    await harness.engine.runRound();

    const events = await eventsAbout(source);
    const byPayout = events.map((event) => ({ type: event.type, data: JSON.parse(event.body).data }));
    expect(byPayout).toHaveLength(2);
    expect(byPayout.find((event) => event.data.payoutId === ids[0])).toMatchObject({
      type: 'payout.settled',
      data: { sourceAccountId: source, amount: '1.5000000', asset: 'XLM', state: 'settled' },
    });
    const failure = byPayout.find((event) => event.data.payoutId === ids[1]);
    expect(failure).toMatchObject({
      type: 'payout.failed',
      data: { destination: missing, amount: '2.0000000', state: 'failed' },
    });
    expect(failure?.data.reason).toContain('op_no_destination');
  });
});
