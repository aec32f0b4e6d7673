import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  accruedAt,
  finalPeriod,
  nextSettlementAfter,
  periodAt,
  type Schedule,
  type SettlementSchedule,
} from './accrual.ts';

const hourMs = 3_600_000n;
const plain: Schedule = { totalMinor: 1_000n, startMs: 0n, cliffMs: null, endMs: 3n * hourMs };

/** Random schedules: totals up to int8, spans from a second to ten years, an optional cliff. */
const scheduleArbitrary: fc.Arbitrary<SettlementSchedule> = fc
  .record({
    totalMinor: fc.bigInt({ min: 1n, max: 9_223_372_036_854_775_807n }),
    startMs: fc.bigInt({ min: 0n, max: 4_000_000_000_000n }),
    spanMs: fc.bigInt({ min: 1_000n, max: 315_360_000_000n }),
    cliffTenths: fc.option(fc.integer({ min: 0, max: 10 }), { nil: null }),
    intervalMs: fc.bigInt({ min: 60_000n, max: 31_536_000_000n }),
  })
  .map(({ totalMinor, startMs, spanMs, cliffTenths, intervalMs }) => ({
    totalMinor,
    startMs,
    cliffMs: cliffTenths === null ? null : startMs + (spanMs * BigInt(cliffTenths)) / 10n,
    endMs: startMs + spanMs,
    intervalMs,
  }));

/** An instant from well before the start to well after the end. */
const instantOf = (schedule: Schedule, position: bigint) =>
  schedule.startMs - (schedule.endMs - schedule.startMs) + position;
const positionArbitrary = fc.bigInt({ min: 0n, max: 10n ** 12n });

describe('accrual', () => {
  it('is zero before the start, linear and floored between, and exactly the total from the end on', () => {
    expect(accruedAt(plain, -1n)).toBe(0n);
    expect(accruedAt(plain, 0n)).toBe(0n);
    expect(accruedAt(plain, hourMs)).toBe(333n);
    expect(accruedAt(plain, 2n * hourMs)).toBe(666n);
    expect(accruedAt(plain, 3n * hourMs - 1n)).toBe(999n);
    expect(accruedAt(plain, 3n * hourMs)).toBe(1_000n);
    expect(accruedAt(plain, 10n * hourMs)).toBe(1_000n);
  });

  it('releases everything accrued since the start at the cliff at once', () => {
    const cliffed = { ...plain, cliffMs: hourMs };
    expect(accruedAt(cliffed, hourMs - 1n)).toBe(0n);
    expect(accruedAt(cliffed, hourMs)).toBe(333n);
  });

  it('multiplies before dividing: a total of 1 minor unit a day still accrues exactly', () => {
    // A stored per-millisecond rate of 1/86,400,000 would round to 0 and never pay anything.
    const tiny = { totalMinor: 10n, startMs: 0n, cliffMs: null, endMs: 10n * 86_400_000n };
    expect(accruedAt(tiny, 86_400_000n)).toBe(1n);
    expect(accruedAt(tiny, 5n * 86_400_000n + 1n)).toBe(5n);
  });

  it('is monotone in time, never above the total, and exactly the total at the end', () => {
    fc.assert(
      fc.property(scheduleArbitrary, positionArbitrary, positionArbitrary, (schedule, a, b) => {
        const [early, late] = a < b ? [a, b] : [b, a];
        const first = accruedAt(schedule, instantOf(schedule, early));
        const second = accruedAt(schedule, instantOf(schedule, late));
        expect(first <= second).toBe(true);
        expect(second <= schedule.totalMinor).toBe(true);
        expect(accruedAt(schedule, schedule.endMs)).toBe(schedule.totalMinor);
      }),
      { numRuns: 2_000 },
    );
  });

  it('is zero before the cliff and at least the floor of the linear share from it', () => {
    fc.assert(
      fc.property(scheduleArbitrary, positionArbitrary, (schedule, position) => {
        const at = instantOf(schedule, position);
        const accrued = accruedAt(schedule, at);
        const cliff = schedule.cliffMs ?? schedule.startMs;
        if (at < cliff && at < schedule.endMs) expect(accrued).toBe(0n);
        else if (at < schedule.endMs) {
          const span = schedule.endMs - schedule.startMs;
          // floor(x) is the one integer with x − 1 < floor(x) ≤ x.
          expect(accrued * span <= (at - schedule.startMs) * schedule.totalMinor).toBe(true);
          expect((accrued + 1n) * span > (at - schedule.startMs) * schedule.totalMinor).toBe(true);
        }
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('settlement periods', () => {
  const hourly: SettlementSchedule = { ...plain, endMs: 3n * hourMs + 1_000n, intervalMs: hourMs };

  it('numbers each interval from the start and gives every instant from the end the final period', () => {
    expect(periodAt(hourly, 0n)).toBe(0n);
    expect(periodAt(hourly, hourMs - 1n)).toBe(0n);
    expect(periodAt(hourly, hourMs)).toBe(1n);
    expect(periodAt(hourly, 3n * hourMs)).toBe(3n);
    expect(finalPeriod(hourly)).toBe(4n);
    expect(periodAt(hourly, 3n * hourMs + 1_000n)).toBe(4n);
    expect(periodAt(hourly, 100n * hourMs)).toBe(4n);
  });

  it('looks at a stream at each interval after the start, not before its cliff, and at its end', () => {
    expect(nextSettlementAfter(hourly, 0n)).toBe(hourMs);
    expect(nextSettlementAfter(hourly, hourMs)).toBe(2n * hourMs);
    expect(nextSettlementAfter(hourly, 3n * hourMs)).toBe(3n * hourMs + 1_000n);
    expect(nextSettlementAfter({ ...hourly, cliffMs: hourMs + 1n }, 0n)).toBe(2n * hourMs);
  });

  it('gives distinct periods to the instants a run is due, ending with the final one', () => {
    fc.assert(
      fc.property(scheduleArbitrary, (schedule) => {
        const seen = new Set<bigint>();
        let at = schedule.startMs;
        for (let step = 0; step < 50 && at < schedule.endMs; step += 1) {
          at = nextSettlementAfter(schedule, at);
          expect(seen.has(periodAt(schedule, at))).toBe(false);
          seen.add(periodAt(schedule, at));
        }
        if (at >= schedule.endMs) {
          expect(at).toBe(schedule.endMs);
          expect(periodAt(schedule, at)).toBe(finalPeriod(schedule));
        }
      }),
      { numRuns: 1_000 },
    );
  });
});
