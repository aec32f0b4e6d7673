import { ledgerImbalance } from '../ledger/metrics.ts';
import { formatAmount } from '../money/money.ts';
import type { Detector } from './context.ts';
import { addAssetDeltas, deleteAssetTotals, selectAssetImbalances } from './data.ts';
import { runEntryScan } from './entry-scan.ts';
import { recordFindings } from './findings.ts';

/**
 * ledger_balance: every asset's entries sum to zero. The per-asset running totals are kept by the
 * incremental entry scan; an asset whose total is not zero is a `ledger_imbalance` finding (subject:
 * the asset) and one more `ledger_imbalance_total{currency}` per run that finds it, so the alert
 * keeps firing while it lasts. It resolves when the total is back at zero (a correcting posting).
 */
export const ledgerBalanceDetector: Detector = {
  name: 'ledger_balance',
  needsChain: false,
  run: async (context) => {
    let imbalanced: string[] = [];
    const outcome = await runEntryScan(context, {
      detector: 'ledger_balance',
      addDeltas: addAssetDeltas,
      deleteTotals: deleteAssetTotals,
      judge: async (tx) => {
        const imbalances = await selectAssetImbalances(tx);
        imbalanced = imbalances.map((row) => row.asset);
        return recordFindings(
          tx,
          imbalances.map((row) => ({
            kind: 'ledger_imbalance',
            subject: row.asset,
            evidence: { asset: row.asset, sum: formatAmount(row.totalMinor, row.precision) },
          })),
          { resolveKind: 'ledger_imbalance' },
        );
      },
    });
    // Counted after the pass committed, so a rolled-back pass counts nothing.
    for (const currency of imbalanced) ledgerImbalance.inc({ currency });
    return outcome;
  },
};
