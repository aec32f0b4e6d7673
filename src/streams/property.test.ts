import { Keypair } from '@stellar/stellar-sdk';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { selectOpenHoldSums } from '../escrow/data.ts';
import { selectImbalances } from '../ledger/data.ts';
import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { DomainError } from '../platform/errors.ts';
import { accruedAt } from './accrual.ts';
import { selectStream } from './data.ts';
import { accruedOf, cancelStream, createStream, scheduleOf } from './service.ts';
import { finishRun, runSettlement, settleBatch, startRun } from './settlement.ts';
import { customer, systemBalance, unit } from './test-support.ts';

/**
 * Acceptance 1 of issue 18: random streams (account and Stellar recipients, cliffs, minimums),
 * a controllable clock, full settlement runs, runs that crash mid-batch (the batch's transaction
 * rolls back and the run is left `running`), runs that stop after k streams (committed, never
 * finished), and cancellations. After every step, at the clock's instant, for every stream:
 * settled + withdrawable + refunded + unaccrued = total (unaccrued: what the schedule has yet to
 * accrue, zero once cancelled), the stored amounts agree with the hold, the ledger and the
 * recipient's side; accrued is monotone and never above the total, and never below settled. At the
 * end the recipient holds exactly the total (or what had accrued at the cancellation) and the
 * payer the rest; the ledger sums to zero and escrow equals the open holds.
 */

let service: TestService;

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

const minuteMs = 60_000;
const actor = { name: 'property', requestId: undefined };

type StreamSpec = {
  totalUnits: number;
  startMinutes: number;
  durationMinutes: number;
  cliffTenths: number | null;
  intervalMinutes: number;
  minimumTenths: number;
  stellar: boolean;
};

type Step =
  | { op: 'advance'; minutes: number }
  | { op: 'run' }
  | { op: 'crash'; k: number }
  | { op: 'stop'; k: number }
  | { op: 'cancel'; stream: number };

const specArbitrary: fc.Arbitrary<StreamSpec> = fc.record({
  totalUnits: fc.integer({ min: 1, max: 50 }),
  startMinutes: fc.integer({ min: -30, max: 60 }),
  durationMinutes: fc.integer({ min: 31, max: 180 }),
  cliffTenths: fc.option(fc.integer({ min: 0, max: 10 }), { nil: null }),
  intervalMinutes: fc.integer({ min: 1, max: 30 }),
  minimumTenths: fc.integer({ min: 0, max: 4 }),
  stellar: fc.boolean(),
});

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({ op: fc.constant('advance' as const), minutes: fc.integer({ min: 0, max: 45 }) }),
    weight: 4,
  },
  { arbitrary: fc.record({ op: fc.constant('run' as const) }), weight: 3 },
  {
    arbitrary: fc.record({ op: fc.constant('crash' as const), k: fc.integer({ min: 1, max: 4 }) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ op: fc.constant('stop' as const), k: fc.integer({ min: 1, max: 4 }) }),
    weight: 1,
  },
  { arbitrary: fc.record({ op: fc.constant('cancel' as const), stream: fc.nat({ max: 5 }) }), weight: 1 },
);

type Live = {
  id: string;
  payer: string;
  recipient: string | null;
  address: string | null;
  fundsMinor: bigint;
  totalMinor: bigint;
  lastAccrued: bigint;
};

class Crash extends Error {}

async function balance(id: string): Promise<bigint> {
  const [row] = await service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where id = ${id}::uuid`;
  return row?.balance ?? -1n;
}

/** What reached the recipient: its account, or the payouts to its address. */
async function received(stream: Live): Promise<bigint> {
  if (stream.recipient) return balance(stream.recipient);
  const [row] = await service.db.sql<{ sum: bigint }[]>`
    select coalesce(sum(amount_minor), 0)::int8 as sum from payouts where destination = ${stream.address ?? ''}`;
  return row?.sum ?? -1n;
}

async function create(spec: StreamSpec, t0: number): Promise<Live> {
  const fundsMinor = 100n * unit;
  const payer = await customer(service, fundsMinor);
  const recipient = spec.stellar ? null : await customer(service, 0n);
  const address = spec.stellar ? Keypair.random().publicKey() : null;
  const start = t0 + spec.startMinutes * minuteMs;
  // Odd totals in stroops, so the floor leaves dust to the end or the cancellation.
  const totalMinor = BigInt(spec.totalUnits) * unit + 3n;
  const view = await withTransaction(service.db.sql, (tx) =>
    createStream(
      tx,
      {
        payerAccountId: payer,
        ...(recipient ? { recipientAccountId: recipient } : { recipientAddress: address ?? '' }),
        asset: 'XLM',
        totalAmount: formatAmount(totalMinor, 7),
        startAt: new Date(start).toISOString(),
        ...(spec.cliffTenths === null
          ? {}
          : {
              cliffAt: new Date(
                start + (spec.durationMinutes * minuteMs * spec.cliffTenths) / 10,
              ).toISOString(),
            }),
        endAt: new Date(start + spec.durationMinutes * minuteMs).toISOString(),
        settlement: {
          intervalSeconds: spec.intervalMinutes * 60,
          minimumAmount: ((spec.totalUnits * spec.minimumTenths) / 10).toFixed(7),
        },
      },
      actor,
    ),
  );
  return { id: view.id, payer, recipient, address, fundsMinor, totalMinor, lastAccrued: 0n };
}

async function check(streams: readonly Live[], at: Date, label: string): Promise<void> {
  for (const stream of streams) {
    const row = await selectStream(service.db.sql, stream.id);
    expect(row, label).toBeDefined();
    if (!row) return;
    const accrued = accruedOf(row, at);
    const withdrawable = accrued - row.settledMinor;
    const unaccrued = row.state === 'cancelled' ? 0n : row.totalMinor - accrued;
    expect(row.settledMinor + withdrawable + row.refundedMinor + unaccrued, label).toBe(row.totalMinor);
    expect(accrued <= row.totalMinor, label).toBe(true);
    expect(accrued >= stream.lastAccrued, `${label}: accrued went back`).toBe(true);
    // Never paid ahead of the schedule at the run's or the cancellation's instant.
    expect(row.settledMinor <= accruedAt(scheduleOf(row), BigInt(at.getTime())), label).toBe(true);
    stream.lastAccrued = accrued;
    const [hold] = await service.db.sql<{ released: bigint; refunded: bigint }[]>`
      select released_minor as released, refunded_minor as refunded from escrow_holds where id = ${row.holdId}::uuid`;
    expect({ released: hold?.released, refunded: hold?.refunded }, label).toEqual({
      released: row.settledMinor,
      refunded: row.refundedMinor,
    });
    expect(await received(stream), label).toBe(row.settledMinor);
    expect(await balance(stream.payer), label).toBe(stream.fundsMinor - row.totalMinor + row.refundedMinor);
  }
  expect(await selectImbalances(service.db.sql), label).toEqual([]);
  expect(await systemBalance(service, 'escrow'), label).toBe(
    (await selectOpenHoldSums(service.db.sql)).get('XLM') ?? 0n,
  );
}

async function cancelAt(stream: Live, at: Date): Promise<{ type: string; accrued: bigint | undefined }> {
  const row = await selectStream(service.db.sql, stream.id);
  const expected = row ? accruedAt(scheduleOf(row), BigInt(at.getTime())) : undefined;
  try {
    await withTransaction(service.db.sql, (tx) => cancelStream(tx, stream.id, actor, at));
    return { type: 'ok', accrued: expected };
  } catch (error) {
    if (error instanceof DomainError) return { type: error.type, accrued: undefined };
    throw error;
  }
}

async function play(specs: readonly StreamSpec[], steps: readonly Step[]): Promise<void> {
  const sql = service.db.sql;
  const [clock] = await sql<{ now: Date }[]>`select now() as now`;
  const t0 = clock?.now.getTime() ?? 0;
  const streams: Live[] = [];
  for (const spec of specs) streams.push(await create(spec, t0));
  const cancelledAccrued = new Map<string, bigint>();
  let t = t0;
  for (const [index, step] of steps.entries()) {
    const label = `step ${index} ${JSON.stringify(step)}`;
    const at = new Date(t);
    if (step.op === 'advance') t += step.minutes * minuteMs;
    else if (step.op === 'run')
      expect((await runSettlement(sql, { asOf: at })).outcome, label).toBe('succeeded');
    else if (step.op === 'crash' || step.op === 'stop') {
      const runId = await startRun(sql, at);
      const batch = withTransaction(sql, async (tx) => {
        await settleBatch(tx, { runId, asOf: at, limit: step.k, skip: [] });
        if (step.op === 'crash') throw new Crash('killed mid-batch');
      });
      if (step.op === 'crash') await expect(batch, label).rejects.toThrow(Crash);
      else await batch;
      const [run] = await sql<
        { outcome: string }[]
      >`select outcome from stream_settlement_runs where id = ${runId}::uuid`;
      expect(run?.outcome, label).toBe('running');
    } else {
      const stream = streams[step.stream % streams.length];
      if (stream) {
        const outcome = await cancelAt(stream, at);
        expect(
          ['ok', 'streams/already-cancelled', 'streams/already-completed', 'streams/ended'],
          label,
        ).toContain(outcome.type);
        if (outcome.accrued !== undefined) cancelledAccrued.set(stream.id, outcome.accrued);
      }
    }
    await check(streams, new Date(t), label);
  }
  // Past every end, one run settles the rest.
  const end = new Date(t0 + 300 * minuteMs);
  await runSettlement(sql, { asOf: end });
  await check(streams, end, 'end');
  for (const stream of streams) {
    const row = await selectStream(sql, stream.id);
    const owed = cancelledAccrued.get(stream.id) ?? stream.totalMinor;
    expect(row?.state).toBe(cancelledAccrued.has(stream.id) ? 'cancelled' : 'completed');
    expect(await received(stream)).toBe(owed);
    expect(await balance(stream.payer)).toBe(stream.fundsMinor - owed);
  }
  // Runs left `running` by a crash or a stop would be a stuck-settlement finding; close them here
  // so the next sequence starts clean.
  for (const { id } of await sql<
    { id: string }[]
  >`select id from stream_settlement_runs where outcome = 'running'`) {
    await finishRun(sql, id, 'failed', 'abandoned by the property test');
  }
}

describe('streams against the schedule', () => {
  it('keep settled + withdrawable + refunded + unaccrued = total, and pay each side exactly its share', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(specArbitrary, { minLength: 1, maxLength: 4 }),
        fc.array(stepArbitrary, { minLength: 1, maxLength: 16 }),
        play,
      ),
      { numRuns: 100 },
    );
  });
});
