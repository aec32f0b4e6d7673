import { formatAmount } from '../money/money.ts';
import type { Detector } from './context.ts';
import { addAccountDeltas, deleteAccountTotals, selectAccountMismatches } from './data.ts';
import { runEntryScan } from './entry-scan.ts';
import { recordFindings } from './findings.ts';

/** Findings written per run at most; beyond it the run still counts them but resolves nothing. */
export const accountMismatchesMax = 1_000;

/**
 * account_balances: every account's stored balance equals the sum of its entries. The per-account
 * running totals come from the incremental entry scan; the comparison reads every account (cost
 * grows with accounts, not with history). A mismatch is an `account_balance_mismatch` finding
 * (subject: the account id) and resolves when the two agree again.
 */
export const accountBalancesDetector: Detector = {
  name: 'account_balances',
  needsChain: false,
  run: (context) =>
    runEntryScan(context, {
      detector: 'account_balances',
      addDeltas: addAccountDeltas,
      deleteTotals: deleteAccountTotals,
      judge: async (tx) => {
        const mismatches = await selectAccountMismatches(tx, accountMismatchesMax + 1);
        const truncated = mismatches.length > accountMismatchesMax;
        return recordFindings(
          tx,
          mismatches.slice(0, accountMismatchesMax).map((row) => ({
            kind: 'account_balance_mismatch',
            subject: row.accountId,
            evidence: {
              accountId: row.accountId,
              type: row.type,
              asset: row.asset,
              balance: formatAmount(row.balanceMinor, row.precision),
              entriesSum: formatAmount(row.entriesMinor, row.precision),
              difference: formatAmount(row.balanceMinor - row.entriesMinor, row.precision),
            },
          })),
          // A truncated list cannot tell which open findings are gone: resolve nothing this run.
          truncated ? {} : { resolveKind: 'account_balance_mismatch' },
        );
      },
    }),
};
