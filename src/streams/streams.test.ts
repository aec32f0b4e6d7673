import { Keypair } from '@stellar/stellar-sdk';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadlockRetries } from '../../test/support/ledger.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { updatePaymentsMode } from '../controls/data.ts';
import { domainCrontab, domainTasks } from '../domains.ts';
import { selectOpenHoldSums } from '../escrow/data.ts';
import { selectImbalances } from '../ledger/data.ts';
import { instrument } from '../platform/jobs.ts';
import { workerRuns } from '../platform/metrics.ts';
import { settlementLagFrom, streamSettlementLag, streamSettlementRuns } from './metrics.ts';
import { runSettlement } from './settlement.ts';
import { settleStreamsTask, streamsCrontab } from './tasks.ts';
import { balanceOf, call, customer, systemBalance, unit } from './test-support.ts';

let service: TestService;

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  expect(await deadlockRetries()).toBe(0);
  await service.close();
});

const minuteMs = 60_000;
const hourMs = 3_600_000;

async function dbNow(): Promise<number> {
  const [row] = await service.db.sql<{ now: Date }[]>`select now() as now`;
  return row?.now.getTime() ?? 0;
}

type StreamOptions = {
  total?: string;
  startOffsetMs?: number;
  durationMs?: number;
  cliffOffsetMs?: number;
  minimum?: string;
  address?: string;
};

/**
 * A payer funded with 100 XLM and a stream to a fresh recipient account (or to `address`),
 * starting `startOffsetMs` from now (default: an hour ago) and lasting `durationMs` (two hours).
 */
async function streamOf(options: StreamOptions = {}) {
  const payer = await customer(service, 100n * unit);
  const recipient = await customer(service, 0n);
  const now = await dbNow();
  const start = now + (options.startOffsetMs ?? -hourMs);
  const end = start + (options.durationMs ?? 2 * hourMs);
  const response = await call(service, 'POST', '/v1/streams', {
    payload: {
      payerAccountId: payer,
      ...(options.address ? { recipientAddress: options.address } : { recipientAccountId: recipient }),
      asset: 'XLM',
      totalAmount: options.total ?? '12',
      startAt: new Date(start).toISOString(),
      ...(options.cliffOffsetMs === undefined
        ? {}
        : { cliffAt: new Date(start + options.cliffOffsetMs).toISOString() }),
      endAt: new Date(end).toISOString(),
      settlement: { intervalSeconds: 60, ...(options.minimum ? { minimumAmount: options.minimum } : {}) },
      metadata: { contract: 'c-1' },
    },
  });
  expect(response.statusCode, response.body).toBe(201);
  const body = response.json();
  return { payer, recipient, id: String(body.id), holdId: String(body.holdId), start, end, body };
}

async function eventsOf(streamId: string): Promise<string[]> {
  const rows = await service.db.sql<{ type: string }[]>`
    select type from merchant_webhook_events where body::jsonb -> 'data' ->> 'streamId' = ${streamId}
    order by created_at, id`;
  return rows.map((row) => row.type);
}

async function auditsOf(streamId: string): Promise<string[]> {
  const rows = await service.db.sql<{ action: string }[]>`
    select action from audit_log where subject_type = 'stream' and subject_id = ${streamId} order by id`;
  return rows.map((row) => row.action);
}

async function detail(id: string) {
  return (await call(service, 'GET', `/v1/streams/${id}`, { role: 'viewer' })).json();
}

async function moneyHolds(): Promise<void> {
  expect(await selectImbalances(service.db.sql)).toEqual([]);
  expect(await systemBalance(service, 'escrow')).toBe(
    (await selectOpenHoldSums(service.db.sql)).get('XLM') ?? 0n,
  );
}

describe('funding a stream', () => {
  it('moves the total into an escrow hold the stream owns, with its audit row and stream.created', async () => {
    const escrowBefore = await systemBalance(service, 'escrow');
    const { payer, recipient, id, holdId, body } = await streamOf({ startOffsetMs: hourMs });
    expect(body).toMatchObject({
      payerAccountId: payer,
      recipientAccountId: recipient,
      recipientAddress: null,
      total: '12.0000000',
      accrued: '0.0000000',
      settled: '0.0000000',
      withdrawable: '0.0000000',
      refunded: '0.0000000',
      status: 'pending',
      settlement: { intervalSeconds: 60, minimumAmount: '0.0000000' },
      metadata: { contract: 'c-1' },
    });
    expect(await balanceOf(service, payer)).toBe(88n * unit);
    expect(await systemBalance(service, 'escrow')).toBe(escrowBefore + 12n * unit);
    const [hold] = await service.db.sql<{ managedBy: string; payee: string; reference: string }[]>`
      select managed_by as "managedBy", payee_account_id as payee, reference from escrow_holds where id = ${holdId}::uuid`;
    expect(hold).toEqual({ managedBy: 'stream', payee: recipient, reference: `stream:${id}` });
    expect(await auditsOf(id)).toEqual(['stream.created']);
    expect(await eventsOf(id)).toEqual(['stream.created', 'stream.created']);
    await moneyHolds();
  });

  it('refuses bad recipients and schedules, and moves nothing', async () => {
    const payer = await customer(service, 10n * unit);
    const recipient = await customer(service, 0n);
    const now = await dbNow();
    const valid = {
      payerAccountId: payer,
      recipientAccountId: recipient,
      asset: 'XLM',
      totalAmount: '1',
      startAt: new Date(now).toISOString(),
      endAt: new Date(now + hourMs).toISOString(),
      settlement: { intervalSeconds: 60 },
    };
    const address = Keypair.random().publicKey();
    const cases: [object, number, string][] = [
      [{ recipientAccountId: undefined }, 422, 'streams/invalid-recipient'],
      [{ recipientAddress: address }, 422, 'streams/invalid-recipient'],
      [{ recipientAccountId: payer }, 422, 'streams/invalid-recipient'],
      [
        { recipientAccountId: undefined, recipientAddress: `G${'A'.repeat(55)}` },
        400,
        'payouts/invalid-destination',
      ],
      [{ startAt: new Date(now + hourMs).toISOString() }, 422, 'streams/invalid-schedule'],
      [
        { endAt: new Date(now - minuteMs).toISOString(), startAt: new Date(now - hourMs).toISOString() },
        422,
        'streams/invalid-schedule',
      ],
      [{ cliffAt: new Date(now + 2 * hourMs).toISOString() }, 422, 'streams/invalid-schedule'],
      [{ settlement: { intervalSeconds: 60, minimumAmount: '2' } }, 422, 'streams/invalid-schedule'],
      [{ settlement: { intervalSeconds: 59 } }, 400, 'request/validation'],
      [{ totalAmount: '11' }, 422, 'ledger/insufficient-funds'],
    ];
    for (const [change, status, type] of cases) {
      const response = await call(service, 'POST', '/v1/streams', { payload: { ...valid, ...change } });
      expect([response.statusCode, response.json().type], JSON.stringify(change)).toEqual([status, type]);
    }
    expect(await balanceOf(service, payer)).toBe(10n * unit);
    const [count] = await service.db.sql<{ count: number }[]>`
      select count(*)::int as count from streams where payer_account_id = ${payer}::uuid`;
    expect(count?.count).toBe(0);
  });

  it("refuses escrow's own release, refund and dispute of a stream's hold", async () => {
    const { holdId } = await streamOf();
    for (const [path, payload] of [
      ['releases', { amount: '1' }],
      ['refunds', {}],
      ['disputes', { reason: 'mine' }],
    ] as const) {
      const response = await call(service, 'POST', `/v1/escrow/holds/${holdId}/${path}`, { payload });
      expect([response.statusCode, response.json().type], path).toEqual([409, 'escrow/hold-managed']);
    }
    const [hold] = await service.db.sql<{ released: bigint; state: string }[]>`
      select released_minor as released, state from escrow_holds where id = ${holdId}::uuid`;
    expect(hold).toEqual({ released: 0n, state: 'held' });
    const shown = await call(service, 'GET', `/v1/escrow/holds/${holdId}`, { role: 'viewer' });
    expect(shown.json()).toMatchObject({ managedBy: 'stream', remaining: '12.0000000' });
  });

  it('lists streams by payer, recipient and status, cursor-paged', async () => {
    const first = await streamOf();
    const pending = await streamOf({ startOffsetMs: hourMs });
    const byPayer = (
      await call(service, 'GET', `/v1/streams?payer=${first.payer}`, { role: 'viewer' })
    ).json();
    expect(byPayer.items.map((item: { id: string }) => item.id)).toEqual([first.id]);
    expect(byPayer.items[0]).toMatchObject({ status: 'streaming' });
    const byRecipient = (
      await call(service, 'GET', `/v1/streams?recipient=${pending.recipient}&status=pending`, {
        role: 'viewer',
      })
    ).json();
    expect(byRecipient.items.map((item: { id: string }) => item.id)).toEqual([pending.id]);
    const notStreaming = (
      await call(service, 'GET', `/v1/streams?recipient=${pending.recipient}&status=streaming`, {
        role: 'viewer',
      })
    ).json();
    expect(notStreaming.items).toEqual([]);
    const page = (await call(service, 'GET', '/v1/streams?limit=1', { role: 'viewer' })).json();
    expect(page.items).toHaveLength(1);
    const next = (
      await call(service, 'GET', `/v1/streams?limit=1&cursor=${page.nextCursor}`, { role: 'viewer' })
    ).json();
    expect(next.items[0].id).not.toBe(page.items[0].id);
    expect((await call(service, 'GET', '/v1/streams?limit=201', { role: 'viewer' })).statusCode).toBe(400);
  });
});

describe('settlement runs', () => {
  it('pay what accrued at the run, once per period, and complete the stream at its end', async () => {
    const { recipient, id, holdId, start, end } = await streamOf({ total: '12' });
    // A quarter of the two hours: 3 of the 12.
    const quarter = await runSettlement(service.db.sql, { asOf: new Date(start + 30 * minuteMs) });
    // The run's row adds up what it paid (other tests' streams are due in it too).
    const [paid] = await service.db.sql<{ count: number; sum: string }[]>`
      select count(*)::int as count, sum(amount_minor)::text as sum from stream_settlements where run_id = ${quarter.id}::uuid`;
    expect(quarter).toMatchObject({
      outcome: 'succeeded',
      streamsSettled: paid?.count,
      amounts: { XLM: paid?.sum },
    });
    expect(paid?.count).toBeGreaterThan(0);
    expect(await balanceOf(service, recipient)).toBe(3n * unit);
    expect(await detail(id)).toMatchObject({
      settled: '3.0000000',
      nextSettlementAt: new Date(start + 31 * minuteMs).toISOString(),
      settlements: [{ cause: 'run', runId: quarter.id, periodIndex: 30, amount: '3.0000000' }],
    });
    // The same instant again: nothing is due, nothing is paid.
    const again = await runSettlement(service.db.sql, { asOf: new Date(start + 30 * minuteMs) });
    expect(again.streamsSettled).toBe(0);
    expect(await balanceOf(service, recipient)).toBe(3n * unit);

    const last = await runSettlement(service.db.sql, { asOf: new Date(end + minuteMs) });
    expect(last.outcome).toBe('succeeded');
    expect(await balanceOf(service, recipient)).toBe(12n * unit);
    expect(await detail(id)).toMatchObject({
      status: 'completed',
      settled: '12.0000000',
      withdrawable: '0.0000000',
      nextSettlementAt: null,
    });
    const [hold] = await service.db.sql<
      { state: string }[]
    >`select state from escrow_holds where id = ${holdId}::uuid`;
    expect(hold?.state).toBe('closed');
    expect(await auditsOf(id)).toEqual(['stream.created', 'stream.settled', 'stream.completed']);
    // Events of one transaction share created_at: compared as a multiset.
    expect((await eventsOf(id)).sort()).toEqual(
      [
        'stream.created',
        'stream.created',
        'stream.settled',
        'stream.settled',
        'stream.settled',
        'stream.settled',
        'stream.completed',
        'stream.completed',
      ].sort(),
    );
    await moneyHolds();
  });

  it('wait below the minimum and before the cliff, and pay the remainder at the end whatever the minimum', async () => {
    const { recipient, id, start, end } = await streamOf({
      total: '12',
      minimum: '5',
      cliffOffsetMs: 20 * minuteMs,
    });
    await runSettlement(service.db.sql, { asOf: new Date(start + 10 * minuteMs) });
    expect(await detail(id)).toMatchObject({
      settled: '0.0000000',
      nextSettlementAt: new Date(start + 20 * minuteMs).toISOString(),
    });
    // 4 accrued at 40 minutes: below the minimum of 5.
    await runSettlement(service.db.sql, { asOf: new Date(start + 40 * minuteMs) });
    expect(await balanceOf(service, recipient)).toBe(0n);
    await runSettlement(service.db.sql, { asOf: new Date(start + 60 * minuteMs) });
    expect(await balanceOf(service, recipient)).toBe(6n * unit);
    await runSettlement(service.db.sql, { asOf: new Date(start + 100 * minuteMs) });
    expect(await balanceOf(service, recipient)).toBe(6n * unit);
    await runSettlement(service.db.sql, { asOf: new Date(end) });
    expect(await balanceOf(service, recipient)).toBe(12n * unit);
    expect((await detail(id)).status).toBe('completed');
  });

  it('pay a Stellar recipient through a payout from the payer, keyed by stream and period', async () => {
    const address = Keypair.random().publicKey();
    const clearingBefore = await systemBalance(service, 'payout_clearing');
    const { payer, id, start } = await streamOf({ total: '12', address });
    const run = await runSettlement(service.db.sql, { asOf: new Date(start + 60 * minuteMs) });
    expect(run.streamsSettled).toBe(1);
    const shown = await detail(id);
    const payoutId = shown.settlements[0].payoutId;
    const [payout] = await service.db.sql<
      { source: string; destination: string; amount: bigint; requestId: string }[]
    >`
      select source_account_id as source, destination, amount_minor as amount, request_id as "requestId"
      from payouts where id = ${payoutId}::uuid`;
    expect(payout).toEqual({
      source: payer,
      destination: address,
      amount: 6n * unit,
      requestId: `stream:${id}:period:60`,
    });
    // The payer keeps what it had left after funding: the release passed through to clearing.
    expect(await balanceOf(service, payer)).toBe(88n * unit);
    expect(await systemBalance(service, 'payout_clearing')).toBe(clearingBefore + 6n * unit);
    // A stream rewound to look due again within the period already paid (a run retried with the
    // same clock after its commit): the (stream, period) key refuses a second payment, the run
    // fails, and nothing more is paid.
    const rewind = (at: number) =>
      service.db
        .sql`update streams set next_settlement_at = ${new Date(at)}::timestamptz where id = ${id}::uuid`;
    await rewind(start + 60 * minuteMs);
    await expect(
      runSettlement(service.db.sql, { asOf: new Date(start + 60 * minuteMs + 1_000) }),
    ).rejects.toThrow(/stream_settlements_stream_id_period_index_key/);
    const [payouts] = await service.db.sql<{ count: number }[]>`
      select count(*)::int as count from payouts where destination = ${address}`;
    expect(payouts?.count).toBe(1);
    expect((await detail(id)).settled).toBe('6.0000000');
    const [failed] = await service.db.sql<{ outcome: string; error: string }[]>`
      select outcome, error from stream_settlement_runs order by started_at desc, id limit 1`;
    expect(failed?.outcome).toBe('failed');
    await rewind(start + 61 * minuteMs);
  });

  it('record each run, and show the oldest due stream as lag until a run settles it', async () => {
    const succeededBefore =
      (await streamSettlementRuns.get()).values.find((value) => value.labels.result === 'succeeded')?.value ??
      0;
    await streamOf();
    settlementLagFrom(service.db.sql);
    const lag = (await streamSettlementLag.get()).values[0]?.value ?? 0;
    // Due since a minute after its start, an hour ago.
    expect(lag).toBeGreaterThan(50 * 60);
    // A few seconds ahead, so no stream falls due again between the run and the scrape.
    const run = await runSettlement(service.db.sql, { asOf: new Date((await dbNow()) + 5_000) });
    expect(run.outcome).toBe('succeeded');
    expect(run.finishedAt).not.toBeNull();
    settlementLagFrom(service.db.sql);
    expect((await streamSettlementLag.get()).values[0]?.value).toBe(0);
    const succeeded = (await streamSettlementRuns.get()).values.find(
      (value) => value.labels.result === 'succeeded',
    )?.value;
    expect(succeeded).toBe(succeededBefore + 1);
  });
});

describe('the settlement job', () => {
  it('runs every minute as streams_settle, counted in worker_runs_total, and settles due streams', async () => {
    expect(streamsCrontab).toBe('* * * * * streams_settle');
    expect(domainCrontab.split('\n')).toContain(streamsCrontab);
    const { recipient } = await streamOf();
    const counted = async () =>
      (await workerRuns.get()).values.find(
        (value) => value.labels.worker === settleStreamsTask && value.labels.result === 'success',
      )?.value ?? 0;
    const before = await counted();
    const task = instrument(domainTasks(service.runtime, service.domains))[settleStreamsTask];
    expect(task).toBeDefined();
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    await task?.({}, { logger: quiet, job: { id: '1', attempts: 1 } } as unknown as JobHelpers);
    expect(await counted()).toBe(before + 1);
    // Halfway through at the database's clock: about 6 of the 12.
    expect(await balanceOf(service, recipient)).toBeGreaterThanOrEqual(6n * unit);
  });

  it('leaves a refused stream due and the run partial, and pays it once payments move again', async () => {
    const { recipient, id } = await streamOf();
    const asOf = new Date((await dbNow()) + 5_000);
    await updatePaymentsMode(service.db.sql, 'read_only', 'test', 'refusal');
    const refused = await runSettlement(service.db.sql, { asOf });
    await updatePaymentsMode(service.db.sql, 'standard', 'test', 'refusal over');
    expect(refused.outcome).toBe('partial');
    expect(refused.refused).toContainEqual({
      streamId: id,
      type: 'payments/read-only',
      detail: expect.any(String),
    });
    expect(await balanceOf(service, recipient)).toBe(0n);
    expect((await detail(id)).settled).toBe('0.0000000');
    const paid = await runSettlement(service.db.sql, { asOf });
    expect(paid.outcome).toBe('succeeded');
    expect(await balanceOf(service, recipient)).toBeGreaterThanOrEqual(6n * unit);
    await moneyHolds();
  });
});

describe('cancelling a stream', () => {
  it('racing a settlement run, ends with each side paid its share once', async () => {
    const { payer, recipient, id } = await streamOf({ total: '12' });
    const [cancelled] = await Promise.all([
      call(service, 'POST', `/v1/streams/${id}/cancel`),
      runSettlement(service.db.sql, { asOf: new Date(await dbNow()) }),
    ]);
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    const shown = await detail(id);
    const settled = BigInt(shown.settled.replace('.', ''));
    const refunded = BigInt(shown.refunded.replace('.', ''));
    expect(settled + refunded).toBe(12n * unit);
    expect(await balanceOf(service, recipient)).toBe(settled);
    expect(await balanceOf(service, payer)).toBe(88n * unit + refunded);
    expect(
      shown.settlements.reduce(
        (sum: bigint, row: { amount: string }) => sum + BigInt(row.amount.replace('.', '')),
        0n,
      ),
    ).toBe(settled);
    await moneyHolds();
  });

  it('pays what accrued, refunds the rest to the payer, and then refuses with precise codes', async () => {
    const { payer, recipient, id, holdId } = await streamOf({ total: '12' });
    expect((await call(service, 'POST', `/v1/streams/${id}/cancel`, { role: 'viewer' })).statusCode).toBe(
      403,
    );
    const response = await call(service, 'POST', `/v1/streams/${id}/cancel`, { role: 'operator' });
    expect(response.statusCode, response.body).toBe(200);
    const cancelled = response.json();
    expect(cancelled.status).toBe('cancelled');
    const settled = BigInt(cancelled.settled.replace('.', ''));
    const refunded = BigInt(cancelled.refunded.replace('.', ''));
    // Halfway through: 6 accrued, give or take the milliseconds the request took.
    expect(settled).toBeGreaterThanOrEqual(6n * unit);
    expect(settled).toBeLessThan(7n * unit);
    expect(settled + refunded).toBe(12n * unit);
    expect(cancelled.withdrawable).toBe('0.0000000');
    expect(await balanceOf(service, recipient)).toBe(settled);
    expect(await balanceOf(service, payer)).toBe(88n * unit + refunded);
    const [hold] = await service.db.sql<
      { state: string }[]
    >`select state from escrow_holds where id = ${holdId}::uuid`;
    expect(hold?.state).toBe('closed');
    expect(await auditsOf(id)).toEqual(['stream.created', 'stream.cancelled']);
    const again = await call(service, 'POST', `/v1/streams/${id}/cancel`);
    expect([again.statusCode, again.json().type]).toEqual([409, 'streams/already-cancelled']);
    // A later run pays nothing more.
    await runSettlement(service.db.sql, { asOf: new Date(Date.now() + 10 * hourMs) });
    expect(await balanceOf(service, recipient)).toBe(settled);
    await moneyHolds();
  });

  it('refuses a completed stream, one past its end, and an unknown one', async () => {
    const completed = await streamOf({ startOffsetMs: -hourMs, durationMs: hourMs + 30_000 });
    await runSettlement(service.db.sql, { asOf: new Date(completed.end) });
    // Its end passed a second ago, and no run has paid the remainder yet.
    const ended = await streamOf({ startOffsetMs: -hourMs, durationMs: hourMs + 30_000 });
    await service.db
      .sql`update streams set end_at = now() - interval '1 second' where id = ${ended.id}::uuid`;
    const refusedCompleted = await call(service, 'POST', `/v1/streams/${completed.id}/cancel`);
    expect([refusedCompleted.statusCode, refusedCompleted.json().type]).toEqual([
      409,
      'streams/already-completed',
    ]);
    const refusedEnded = await call(service, 'POST', `/v1/streams/${ended.id}/cancel`);
    expect([refusedEnded.statusCode, refusedEnded.json().type]).toEqual([409, 'streams/ended']);
    const missing = await call(service, 'POST', '/v1/streams/00000000-0000-4000-8000-000000000000/cancel');
    expect([missing.statusCode, missing.json().type]).toEqual([404, 'streams/not-found']);
  });
});
