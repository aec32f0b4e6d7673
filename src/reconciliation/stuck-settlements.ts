import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Detector } from './context.ts';
import { countStuckPayouts, resolveUnstuckFindings, selectStuckPayouts } from './data.ts';
import { recordFindings } from './findings.ts';
import { payoutsStuck, stuckStates } from './metrics.ts';

/** Findings written per run at most (the oldest); the gauge counts every stuck payout. */
export const stuckFindingsMax = 1_000;

/**
 * stuck_settlements: payouts still not settled or failed `stuckAfterSeconds` after they were
 * accepted, counted by state into `payouts_stuck{state}`, with a `stuck_settlement` finding per
 * payout (subject: the payout id). The query reads non-terminal payouts only (the by-state index),
 * so its cost follows the payouts in flight, not history. A finding resolves once its payout is
 * terminal.
 */
export const stuckSettlementsDetector: Detector = {
  name: 'stuck_settlements',
  needsChain: false,
  run: async (context) => {
    const olderThan = context.settings.stuckAfterSeconds;
    const [counts, change] = await withTransaction(
      context.sql,
      async (tx) => {
        const byState = await countStuckPayouts(tx, olderThan, stuckStates);
        const stuck = await selectStuckPayouts(tx, olderThan, stuckStates, stuckFindingsMax);
        const recorded = await recordFindings(
          tx,
          stuck.map((payout) => ({
            kind: 'stuck_settlement',
            subject: payout.id,
            evidence: {
              payoutId: payout.id,
              state: payout.state,
              stateReason: payout.stateReason,
              asset: payout.asset,
              amount: formatAmount(payout.amountMinor, payout.precision),
              destination: payout.destination,
              acceptedAt: payout.createdAt.toISOString(),
              updatedAt: payout.updatedAt.toISOString(),
              thresholdSeconds: olderThan,
            },
          })),
        );
        recorded.resolved += await resolveUnstuckFindings(tx, olderThan, stuckStates);
        return [byState, recorded] as const;
      },
      { isolation: 'repeatable read' },
    );
    context.findings.add(change);
    const countOf = new Map(counts.map((row) => [row.state, row.count]));
    for (const state of stuckStates) payoutsStuck.set({ state }, countOf.get(state) ?? 0);
    return { complete: true, scanned: counts.reduce((sum, row) => sum + row.count, 0) };
  },
};
