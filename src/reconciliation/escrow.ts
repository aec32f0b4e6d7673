import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { type Detector, escrowOpenHolds } from './context.ts';
import { selectSystemBalances } from './data.ts';
import { recordFindings } from './findings.ts';

/**
 * escrow: the `escrow` account of each asset holds exactly the sum of what remains of open escrow
 * holds (src/escrow, through `openHolds`). Both are read in one snapshot. A difference is an `escrow_leak`
 * finding (subject: the asset) that resolves when they agree again. Cost: one row per asset.
 */
export const escrowDetector: Detector = {
  name: 'escrow',
  needsChain: false,
  run: async (context) => {
    const openHolds = context.openHolds ?? escrowOpenHolds;
    const [scanned, change] = await withTransaction(
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
        return [balances.length, recorded] as const;
      },
      { isolation: 'repeatable read' },
    );
    context.findings.add(change);
    return { complete: true, scanned };
  },
};
