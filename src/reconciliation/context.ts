import { selectOpenHoldSums } from '../escrow/data.ts';
import { assert } from '../platform/assert.ts';
import type { ReconciliationConfig } from '../platform/config.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import type { Logger } from '../platform/logging.ts';
import { type Checkpoint, saveCheckpoint, selectCheckpoint } from './data.ts';
import type { DetectorName, FindingsTally } from './findings.ts';

/** What every detector is given, and the contract it keeps. */

/** Where detectors that read Stellar reach it: Horizon URLs in failover order and the hot wallet. */
export type ChainAccess = { horizonUrls: readonly string[]; hotWallet: string };

export type ReconciliationSettings = {
  /** A payout not terminal this long after it was accepted is a stuck settlement. */
  stuckAfterSeconds: number;
  /** An escrow release paid on to a Stellar address whose payout is not final this long after it is a stuck release. */
  stuckReleaseAfterSeconds: number;
  /** A stream settlement run still `running` this long after it started is abandoned and a `stream_run_stuck` finding. */
  streamRunStuckAfterSeconds: number;
  /** An active stream due this long and not settled is a `stream_overdue` finding. */
  streamOverdueAfterSeconds: number;
  /** Hot wallet vs `settlement` differences up to this are not drift (stroops: the chain's unit). */
  chainDriftToleranceStroops: bigint;
  /** A drift must last this long before it is a finding (deposits not credited yet, payouts not booked yet). */
  chainDriftGraceSeconds: number;
  /** A caller paying out more than this × its trailing daily average in 24 h is unusual. */
  payoutVolumeFactor: number;
  /** Per asset code: a caller paying out more than this in 24 h is unusual, whatever its history. */
  payoutVolumeDailyTotals: ReadonlyMap<string, string>;
  /**
   * Longer than any transaction that writes what a detector scans may stay open. A gap in the
   * entry ids older than this was rolled back; a time-ordered scan looks back this far for rows
   * that committed late.
   */
  lateCommitSecondsMax: number;
};

/**
 * No transaction that posts entries or credits deposits is meant to stay open for more than a few
 * seconds (each is a handful of statements, no network call inside); ten minutes leaves a wide
 * margin for a slow lock wait or a paused process. A deployment can enforce it with PostgreSQL's
 * `idle_in_transaction_session_timeout`.
 */
export const postingTransactionSecondsMax = 600;

export function reconciliationSettings(config: ReconciliationConfig): ReconciliationSettings {
  return { ...config, lateCommitSecondsMax: postingTransactionSecondsMax };
}

/** Where the escrow feature reports the sum of open holds per asset (minor units). */
export type OpenHoldsSource = (db: Executor) => Promise<ReadonlyMap<string, bigint>>;

/** The real source: what remains of open escrow holds, per asset (src/escrow). */
export const escrowOpenHolds: OpenHoldsSource = selectOpenHoldSums;

export type ReconciliationDeps = {
  sql: Sql;
  logger: Logger;
  settings: ReconciliationSettings;
  chain?: ChainAccess | undefined;
  /** Defaults to `escrowOpenHolds`; a test may plant another sum. */
  openHolds?: OpenHoldsSource;
};

export type Progress = (done: number, total: number) => void;

export type DetectorContext = ReconciliationDeps & {
  detector: DetectorName;
  lease: string;
  /** Rebuild from the beginning of history instead of continuing from the checkpoint. */
  full: boolean;
  progress: Progress;
  /** Add each committed FindingsChange here; the runner turns it into metrics. */
  findings: FindingsTally;
};

export type DetectorOutcome = {
  /** The run examined everything up to now (false: it stopped at its per-run bound and is behind). */
  complete: boolean;
  /** Items examined: entries, payouts, payments, deposits, assets. */
  scanned: number;
};

export type Detector = {
  name: DetectorName;
  needsChain: boolean;
  run(context: DetectorContext): Promise<DetectorOutcome>;
};

export class LeaseLost extends Error {
  override name = 'LeaseLost';
}

/** Lease seconds granted at claim and at every checkpoint save; every pass fits well inside it. */
export const leaseSeconds = 300;

export async function loadCheckpoint(db: Executor, context: DetectorContext): Promise<Checkpoint> {
  const checkpoint = await selectCheckpoint(db, context.detector, context.lease);
  if (!checkpoint) throw new LeaseLost(`${context.detector}: the lease was taken over`);
  return checkpoint;
}

export async function storeCheckpoint(
  db: Executor,
  context: DetectorContext,
  checkpoint: Checkpoint,
): Promise<void> {
  if (!(await saveCheckpoint(db, context.detector, context.lease, checkpoint, leaseSeconds))) {
    throw new LeaseLost(`${context.detector}: the lease was taken over`);
  }
}

export function requireChain(context: DetectorContext): ChainAccess {
  assert(context.chain !== undefined, `${context.detector} needs Stellar endpoints: the runner checks first`);
  return context.chain;
}
