import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Tx } from '../platform/db/types.ts';
import { abandonRuns, selectOverdueStreams, selectStuckRuns } from '../streams/data.ts';
import { streamSettlementRuns } from '../streams/metrics.ts';
import { runOutcomes } from '../streams/states.ts';
import type { Detector, ReconciliationSettings } from './context.ts';
import { countStuckPayouts, resolveUnstuckFindings, selectStuckPayouts } from './data.ts';
import { type FindingsChange, recordFindings } from './findings.ts';
import { payoutsStuck, stuckStates } from './metrics.ts';

/** Findings written per run at most (the oldest); the gauge counts every stuck payout. */
export const stuckFindingsMax = 1_000;
/** Stream settlement runs abandoned per detector run at most (the oldest); the next run takes the rest. */
export const stuckRunsMax = 100;

/**
 * Stream settlement (docs/streams.md#stuck-settlement), in the detector's transaction. A run still
 * `running` `streamRunStuckAfterSeconds` after it started (its process crashed or hangs) is closed
 * as `abandoned`, guarded by `outcome = 'running'`: the batches it committed stay settled, a batch
 * still open fails on its guarded counter update and rolls back, and the next run settles what is
 * left. Each is a `stream_run_stuck` finding (subject: the run id) that a person closes once they
 * have checked its payouts (the runbook). An active stream due `streamOverdueAfterSeconds` ago and
 * not settled is a `stream_overdue` finding (subject: the stream id) that resolves once a run
 * settles it; only a complete list resolves the rest.
 */
async function streamSettlementFindings(
  tx: Tx,
  settings: ReconciliationSettings,
): Promise<{ changes: FindingsChange[]; abandoned: number; scanned: number }> {
  const runs = await selectStuckRuns(tx, settings.streamRunStuckAfterSeconds, stuckRunsMax);
  const abandoned = new Set(
    runs.length === 0
      ? []
      : await abandonRuns(tx, {
          runIds: runs.map((run) => run.id),
          olderThanSeconds: settings.streamRunStuckAfterSeconds,
          reason: runOutcomes.abandoned.reason,
        }),
  );
  const runFindings = await recordFindings(
    tx,
    runs
      .filter((run) => abandoned.has(run.id))
      .map((run) => ({
        kind: 'stream_run_stuck',
        subject: run.id,
        evidence: {
          runId: run.id,
          asOf: run.asOf.toISOString(),
          startedAt: run.startedAt.toISOString(),
          runningSeconds: Math.round(run.runningSeconds),
          streamsSettled: run.streamsSettled,
          amountsMinor: run.amounts,
          closedAs: 'abandoned',
          thresholdSeconds: settings.streamRunStuckAfterSeconds,
        },
      })),
  );
  const overdue = await selectOverdueStreams(tx, settings.streamOverdueAfterSeconds, stuckFindingsMax);
  const overdueFindings = await recordFindings(
    tx,
    overdue.map((stream) => ({
      kind: 'stream_overdue',
      subject: stream.id,
      evidence: {
        streamId: stream.id,
        asset: stream.asset,
        recipient: stream.recipientAccountId ?? stream.recipientAddress,
        nextSettlementAt: stream.nextSettlementAt.toISOString(),
        overdueSeconds: Math.round(stream.overdueSeconds),
        settled: formatAmount(stream.settledMinor, stream.precision),
        total: formatAmount(stream.totalMinor, stream.precision),
        thresholdSeconds: settings.streamOverdueAfterSeconds,
      },
    })),
    overdue.length < stuckFindingsMax ? { resolveKind: 'stream_overdue' } : {},
  );
  return {
    changes: [runFindings, overdueFindings],
    abandoned: abandoned.size,
    scanned: runs.length + overdue.length,
  };
}

/**
 * stuck_settlements: payouts still not settled or failed `stuckAfterSeconds` after they were
 * accepted, counted by state into `payouts_stuck{state}`, with a `stuck_settlement` finding per
 * payout (subject: the payout id). The query reads non-terminal payouts only (the by-state index),
 * so its cost follows the payouts in flight, not history. A finding resolves once its payout is
 * terminal. Then stream settlement (`streamSettlementFindings`): stuck runs and overdue streams,
 * read through partial indexes (running runs, active streams by due time).
 */
export const stuckSettlementsDetector: Detector = {
  name: 'stuck_settlements',
  needsChain: false,
  run: async (context) => {
    const olderThan = context.settings.stuckAfterSeconds;
    const [counts, changes, streams] = await withTransaction(
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
        const ofStreams = await streamSettlementFindings(tx, context.settings);
        return [byState, [recorded, ...ofStreams.changes], ofStreams] as const;
      },
      { isolation: 'repeatable read' },
    );
    for (const change of changes) context.findings.add(change);
    if (streams.abandoned > 0) streamSettlementRuns.inc({ result: 'abandoned' }, streams.abandoned);
    const countOf = new Map(counts.map((row) => [row.state, row.count]));
    for (const state of stuckStates) payoutsStuck.set({ state }, countOf.get(state) ?? 0);
    return { complete: true, scanned: counts.reduce((sum, row) => sum + row.count, 0) + streams.scanned };
  },
};
