/**
 * What a stream has accrued, as a pure function of its original schedule, in bigint minor units
 * and milliseconds since the epoch. Nothing here is stored: no rate (a per-millisecond rate in
 * the asset's minor unit would round, and the recipient would fall behind, as Sablier Flow
 * measured at 9.3 minutes a day), and no re-based start (a settlement changes `settled` only).
 *
 * - Before the start, and before the cliff when there is one: 0. At the cliff, everything accrued
 *   since the start becomes available at once (Sablier Lockup's cliff).
 * - Between: floor((t − start) × total / (end − start)), multiplying before dividing. The floor
 *   leaves the dust to the end; a cancellation refunds it to the payer.
 * - From the end on: exactly the total.
 */

export type Schedule = {
  totalMinor: bigint;
  startMs: bigint;
  /** Null: no cliff. Otherwise start ≤ cliff ≤ end. */
  cliffMs: bigint | null;
  endMs: bigint;
};

export type SettlementSchedule = Schedule & { intervalMs: bigint };

export function accruedAt(schedule: Schedule, atMs: bigint): bigint {
  const { totalMinor, startMs, cliffMs, endMs } = schedule;
  if (atMs >= endMs) return totalMinor;
  if (atMs < startMs || (cliffMs !== null && atMs < cliffMs)) return 0n;
  return ((atMs - startMs) * totalMinor) / (endMs - startMs);
}

/** The last period: the one that holds the end (the end itself when it falls on the grid). */
export function finalPeriod(schedule: SettlementSchedule): bigint {
  const span = schedule.endMs - schedule.startMs;
  return (span + schedule.intervalMs - 1n) / schedule.intervalMs;
}

/**
 * The settlement period `at` falls in: period k covers [start + k × interval, start + (k+1) ×
 * interval), and every instant from the end on is the final period. A run keys each settlement
 * by (stream, period), so two runs never both pay one period.
 */
export function periodAt(schedule: SettlementSchedule, atMs: bigint): bigint {
  if (atMs >= schedule.endMs) return finalPeriod(schedule);
  if (atMs < schedule.startMs) return 0n;
  return (atMs - schedule.startMs) / schedule.intervalMs;
}

/**
 * When a run next looks at the stream after `at`: the next instant of the grid start + k ×
 * interval (k ≥ 1) after `at` and not before the cliff, and never after the end.
 */
export function nextSettlementAfter(schedule: SettlementSchedule, atMs: bigint): bigint {
  const { startMs, cliffMs, endMs, intervalMs } = schedule;
  let period = atMs < startMs ? 1n : (atMs - startMs) / intervalMs + 1n;
  if (cliffMs !== null) {
    const cliffPeriod = (cliffMs - startMs + intervalMs - 1n) / intervalMs;
    if (cliffPeriod > period) period = cliffPeriod;
  }
  const next = startMs + period * intervalMs;
  return next < endMs ? next : endMs;
}
