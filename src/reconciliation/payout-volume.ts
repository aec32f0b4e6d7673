import { parsePositiveAmount } from '../ledger/transfers.ts';
import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Detector, ReconciliationSettings } from './context.ts';
import { type CallerVolume, selectCallerVolumes } from './data.ts';
import { type Observation, recordFindings } from './findings.ts';

/** The days before the last 24 h whose daily average a caller's day is compared with. */
export const trailingDays = 7;
/** Callers examined per run at most, the largest day totals first. */
export const callerVolumesMax = 1_000;

/** Why this caller's last 24 h is unusual, or undefined when it is not. */
export function unusualVolume(volume: CallerVolume, settings: ReconciliationSettings): string | undefined {
  const daily = settings.payoutVolumeDailyTotals.get(volume.asset);
  if (daily !== undefined && volume.dayMinor > parsePositiveAmount(daily, volume.precision)) {
    return `above the daily total of ${daily} ${volume.asset}`;
  }
  // day > factor × (trailing / trailingDays), in integers. A caller without history has no
  // average to exceed: only the daily total catches a new key draining balances.
  const factor = BigInt(settings.payoutVolumeFactor);
  if (volume.trailingMinor > 0n && volume.dayMinor * BigInt(trailingDays) > factor * volume.trailingMinor) {
    return `more than ${settings.payoutVolumeFactor}× its daily average of the ${trailingDays} days before`;
  }
  return undefined;
}

/**
 * payout_volume: a caller (service subject or key) paying out far more than it usually does is
 * what a compromised key draining balances looks like. Per caller and asset, the last 24 h are
 * compared with `RECONCILIATION_PAYOUT_VOLUME_FACTOR` × the daily average of the 7 days before,
 * and with `RECONCILIATION_PAYOUT_VOLUME_DAILY_TOTALS`; each excess is an `unusual_payout_volume`
 * finding (subject: caller and asset) that a person closes once they have looked (it describes
 * money that left, which nothing later un-happens).
 */
export const payoutVolumeDetector: Detector = {
  name: 'payout_volume',
  needsChain: false,
  run: async (context) => {
    const [scanned, change] = await withTransaction(context.sql, async (tx) => {
      const found = await selectCallerVolumes(tx, { trailingDays, limit: callerVolumesMax });
      const observations: Observation[] = [];
      for (const volume of found) {
        const why = unusualVolume(volume, context.settings);
        if (why === undefined) continue;
        observations.push({
          kind: 'unusual_payout_volume',
          subject: `${volume.caller} ${volume.asset}`,
          evidence: {
            caller: volume.caller,
            asset: volume.asset,
            last24h: formatAmount(volume.dayMinor, volume.precision),
            payoutsLast24h: volume.dayCount,
            dailyAverageBefore: formatAmount(volume.trailingMinor / BigInt(trailingDays), volume.precision),
            why,
          },
        });
      }
      return [found.length, await recordFindings(tx, observations)] as const;
    });
    context.findings.add(change);
    return { complete: scanned < callerVolumesMax, scanned };
  },
};
