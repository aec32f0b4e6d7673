import { selectStuckReleases } from '../escrow/data.ts';
import { formatAmount } from '../money/money.ts';
import { openStates as openPayoutStates } from '../payouts/states.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { type Detector, escrowOpenHolds } from './context.ts';
import { selectSystemBalances } from './data.ts';
import { recordFindings } from './findings.ts';

/**
 * Stuck releases recorded per run, oldest first. Past it the newest stay unrecorded until older
 * ones settle; a book with this many releases in flight past their threshold is an incident well
 * before the list is complete.
 */
export const stuckReleasesMax = 1_000;

/**
 * escrow: the `escrow` account of each asset holds exactly the sum of what remains of open escrow
 * holds (src/escrow, through `openHolds`). Both are read in one snapshot. A difference is an `escrow_leak`
 * finding (subject: the asset) that resolves when they agree again. A release paid on to a
 * Stellar address whose payout is still open `stuckReleaseAfterSeconds` after it was accepted is a
 * `stuck_release` finding (subject: the payout id) that resolves when the payout is final. Cost:
 * one row per asset, plus the open payouts (partial index), not history.
 */
export const escrowDetector: Detector = {
  name: 'escrow',
  needsChain: false,
  run: async (context) => {
    const openHolds = context.openHolds ?? escrowOpenHolds;
    const [scanned, changes] = await withTransaction(
      context.sql,
      async (tx) => {
        const [balances, holds] = [await selectSystemBalances(tx, 'escrow'), await openHolds(tx)];
        const leaks = balances.filter((row) => row.balanceMinor !== (holds.get(row.asset) ?? 0n));
        const recorded = await recordFindings(
          tx,
          leaks.map((row) => {
            const held = holds.get(row.asset) ?? 0n;
            return {
              kind: 'escrow_leak',
              subject: row.asset,
              evidence: {
                asset: row.asset,
                escrowAccountId: row.accountId,
                escrowBalance: formatAmount(row.balanceMinor, row.precision),
                openHolds: formatAmount(held, row.precision),
                difference: formatAmount(row.balanceMinor - held, row.precision),
              },
            };
          }),
          { resolveKind: 'escrow_leak' },
        );
        const stuck = await selectStuckReleases(tx, {
          olderThanSeconds: context.settings.stuckReleaseAfterSeconds,
          payoutStates: openPayoutStates,
          limit: stuckReleasesMax,
        });
        const recordedStuck = await recordFindings(
          tx,
          stuck.map((row) => ({
            kind: 'stuck_release',
            subject: row.payoutId,
            evidence: {
              holdId: row.holdId,
              payoutId: row.payoutId,
              payoutState: row.payoutState,
              destination: row.destination,
              amount: formatAmount(row.amountMinor, row.precision),
              asset: row.asset,
              releasedAt: row.releasedAt.toISOString(),
            },
          })),
          // A full list may have left stuck releases out: only a complete one resolves the rest.
          stuck.length < stuckReleasesMax ? { resolveKind: 'stuck_release' } : {},
        );
        return [balances.length + stuck.length, [recorded, recordedStuck]] as const;
      },
      { isolation: 'repeatable read' },
    );
    for (const change of changes) context.findings.add(change);
    return { complete: true, scanned };
  },
};
