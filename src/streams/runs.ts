import { formatAmount } from '../money/money.ts';
import type { Executor } from '../platform/db/types.ts';
import { type RunRow, type RunSettlementRow, selectRunSettlements } from './data.ts';

/** Settlements shown with one run, at most (a run settles at most 50 × 100 streams). */
export const runSettlementsShownMax = 200;

/** A settlement run as operators see it: times as RFC 3339, per-asset amounts in minor units. */
export type RunView = {
  id: string;
  outcome: RunRow['outcome'];
  asOf: string;
  startedAt: string;
  finishedAt: string | null;
  streamsSettled: number;
  /** Per asset, the minor units paid (stroops for XLM), as decimal strings. */
  amountsMinor: Record<string, string>;
  error: string | null;
};

export function runView(row: RunRow): RunView {
  return {
    id: row.id,
    outcome: row.outcome,
    asOf: row.asOf.toISOString(),
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    streamsSettled: row.streamsSettled,
    amountsMinor: row.amounts,
    error: row.error,
  };
}

export type RunSettlementView = {
  streamId: string;
  periodIndex: number;
  amount: string;
  asset: string;
  recipient: string;
  payoutId: string | null;
  /** The payout's state (`settled` means it reached the chain); null for an internal recipient. */
  payoutState: string | null;
};

const settlementView = (row: RunSettlementRow): RunSettlementView => ({
  streamId: row.streamId,
  periodIndex: row.periodIndex,
  amount: formatAmount(row.amountMinor, row.precision),
  asset: row.asset,
  recipient: row.recipient,
  payoutId: row.payoutId,
  payoutState: row.payoutState,
});

/** A run's settlements with their payouts' states, oldest first. */
export async function runSettlementViews(db: Executor, runId: string): Promise<RunSettlementView[]> {
  return (await selectRunSettlements(db, runId, runSettlementsShownMax)).map(settlementView);
}
