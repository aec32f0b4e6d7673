import { feeStatsLedgerWindow } from './limits.ts';
import type { Network } from './network.ts';

/** Horizon's `/fee_stats`: per-operation fees over the last five ledgers, all as strings. */

const percentiles = [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99] as const;

function distribution(values: bigint[], fallback: bigint): Record<string, string> {
  const sorted = values.length > 0 ? [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) : [fallback];
  const at = (percentile: number) => {
    const index = Math.max(0, Math.ceil((percentile / 100) * sorted.length) - 1);
    return (sorted[index] ?? fallback).toString();
  };
  const counts = new Map<bigint, number>();
  for (const value of sorted) counts.set(value, (counts.get(value) ?? 0) + 1);
  let mode = fallback;
  let modeCount = 0;
  for (const [value, count] of counts) {
    if (count > modeCount) [mode, modeCount] = [value, count];
  }
  const result: Record<string, string> = {
    max: (sorted.at(-1) ?? fallback).toString(),
    min: (sorted[0] ?? fallback).toString(),
    mode: mode.toString(),
  };
  for (const percentile of percentiles) result[`p${percentile}`] = at(percentile);
  return result;
}

/** Capacity usage is a ratio with two decimals, computed in integers. */
function usageText(operations: number, capacity: number): string {
  const hundredths = Math.floor((operations * 100) / Math.max(1, capacity));
  return `${Math.floor(hundredths / 100)}.${String(hundredths % 100).padStart(2, '0')}`;
}

export function feeStatsView(network: Network, visibleLedger: number) {
  const last = network.ledger(visibleLedger) ?? network.latestLedger();
  const charged: bigint[] = [];
  const bids: bigint[] = [];
  for (
    let sequence = last.sequence;
    sequence > last.sequence - feeStatsLedgerWindow && sequence > 0;
    sequence -= 1
  ) {
    for (const hash of network.ledger(sequence)?.transactionHashes ?? []) {
      const record = network.transaction(hash);
      if (record === undefined) continue;
      const operations = BigInt(record.operationCount + (record.innerHash ? 1 : 0));
      charged.push(record.feeChargedStroops / operations);
      bids.push(record.maxFeeStroops / operations);
    }
  }
  return {
    last_ledger: String(last.sequence),
    last_ledger_base_fee: last.baseFeeStroops.toString(),
    ledger_capacity_usage: usageText(last.txSetOperationCount, last.maxTxSetSize),
    fee_charged: distribution(charged, last.baseFeeStroops),
    max_fee: distribution(bids, last.baseFeeStroops),
  };
}
