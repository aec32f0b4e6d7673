import { withTransaction } from '../platform/db/transaction.ts';
import type { Tx } from '../platform/db/types.ts';
import { type DetectorContext, type DetectorOutcome, loadCheckpoint, storeCheckpoint } from './context.ts';
import {
  type DeltaCounts,
  deleteEntryGaps,
  disableJit,
  type EntryScanDetector,
  expireEntryGaps,
  insertEntryGaps,
  selectEntryIdMax,
  trimEntryGaps,
} from './data.ts';
import { type FindingsChange, noChange } from './findings.ts';

/**
 * The incremental scan of the append-only `entries` table behind ledger_balance and
 * account_balances: running totals up to an id cursor, in a checkpoint.
 *
 * An id cursor alone is not enough: ids are handed out when a row is inserted, not when its
 * transaction commits, so a posting can become visible below the cursor after a higher id was
 * counted. Each pass therefore records the ids in its range that its snapshot does not show
 * (gaps), rechecks every gap on every pass, and counts a gap's entry when it appears (removing the
 * gap in the same statement, so it is counted once). A gap older than `lateCommitSecondsMax`
 * belonged to a transaction that rolled back and is forgotten; the table is also capped at
 * `entryGapsMax` rows (newest kept), so a huge rollback cannot grow it without bound. An entry
 * whose gap was forgotten and that commits after all would be missed: account_balances then
 * reports its accounts, which is the right alarm for it.
 *
 * A pass runs in one repeatable-read snapshot: the totals, the gaps and the balances it compares
 * against all describe one moment. It covers at most `entryRangeMax` ids, so a pass is bounded
 * however far behind the detector is. The totals are only judged on a pass that reached the
 * newest visible entry: then every visible journal is counted whole (its entries commit together),
 * while a pass that stops mid-range may have cut a journal in two.
 */

/** Ids per pass: one pass is about 0.1–0.3 s of SQL at this size. */
export const entryRangeMax = 50_000n;
/** Passes per scheduled run: 2.5 million new entries a minute before a run reports itself behind. */
export const entryPassesPerRunMax = 50;
/** Gaps kept at most per detector (rolled-back postings are a few entries each). */
export const entryGapsMax = 100_000;

export type EntryScanTarget = {
  detector: EntryScanDetector;
  addDeltas(tx: Tx, cursor: bigint, upper: bigint): Promise<DeltaCounts>;
  deleteTotals(tx: Tx): Promise<void>;
  /** Compares the totals with what they must equal and records findings; only on a caught-up pass. */
  judge(tx: Tx, context: DetectorContext): Promise<FindingsChange>;
};

type PassReport = DeltaCounts & {
  cursor: bigint;
  upper: bigint;
  maxId: bigint;
  gapsAdded: number;
  gapsExpired: number;
  gapsDropped: number;
  caughtUp: boolean;
};

async function pass(tx: Tx, context: DetectorContext, target: EntryScanTarget): Promise<PassReport> {
  await disableJit(tx);
  const { cursor, state } = await loadCheckpoint(tx, context);
  const maxId = await selectEntryIdMax(tx);
  const ceiling = cursor + entryRangeMax;
  const upper = maxId <= cursor ? cursor : maxId < ceiling ? maxId : ceiling;
  const counts = await target.addDeltas(tx, cursor, upper);
  const gapsAdded = upper > cursor ? await insertEntryGaps(tx, target.detector, cursor, upper) : 0;
  const gapsExpired = await expireEntryGaps(tx, target.detector, context.settings.lateCommitSecondsMax);
  const gapsDropped = await trimEntryGaps(tx, target.detector, entryGapsMax);
  const caughtUp = upper >= maxId;
  await storeCheckpoint(tx, context, { cursor: upper, state });
  return { ...counts, cursor, upper, maxId, gapsAdded, gapsExpired, gapsDropped, caughtUp };
}

export async function runEntryScan(
  context: DetectorContext,
  target: EntryScanTarget,
): Promise<DetectorOutcome> {
  const { sql, logger } = context;
  if (context.full) {
    await withTransaction(sql, async (tx) => {
      const { state } = await loadCheckpoint(tx, context);
      await target.deleteTotals(tx);
      await deleteEntryGaps(tx, target.detector);
      await storeCheckpoint(tx, context, { cursor: 0n, state });
    });
  }
  const passesMax = context.full ? Number.POSITIVE_INFINITY : entryPassesPerRunMax;
  let scanned = 0;
  let start: bigint | undefined;
  for (let index = 0; index < passesMax; index += 1) {
    let judged = noChange();
    const report = await withTransaction(
      sql,
      async (tx) => {
        const done = await pass(tx, context, target);
        if (done.caughtUp) judged = await target.judge(tx, context);
        return done;
      },
      { isolation: 'repeatable read' },
    );
    context.findings.add(judged);
    scanned += report.scanned + report.recovered;
    start ??= report.cursor;
    context.progress(Number(report.upper - start), Number(report.maxId - start));
    if (report.gapsDropped > 0) {
      logger.warn(
        { detector: target.detector, dropped: report.gapsDropped, gapsMax: entryGapsMax },
        'entry gaps over their bound: the oldest were forgotten',
      );
    }
    if (report.caughtUp) return { complete: true, scanned };
  }
  return { complete: false, scanned };
}
