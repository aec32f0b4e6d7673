import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { formatAmount } from '../money/money.ts';
import { assert } from '../platform/assert.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { emitEvents } from '../webhooks/events.ts';
import { accruedAt, nextSettlementAfter, periodAt } from './accrual.ts';
import {
  addToRun,
  claimDueStreams,
  finishRunRow,
  insertRun,
  insertSettlement,
  moveStream,
  postponeStream,
  type RunRow,
  type StreamRow,
  selectStream,
} from './data.ts';
import { streamSettlementRuns } from './metrics.ts';
import { lockStreamAccounts, payRecipient, scheduleOf, streamEvents, streamView } from './service.ts';

/**
 * Streams settled per transaction, and transactions per run. A batch holds its streams' rows, the
 * holds and the accounts until it commits, so it stays small; 50 batches of 100 settle 5,000
 * streams a minute, and a run that leaves some due is followed by the next minute's.
 */
export const settlementBatchMax = 100;
export const settlementBatchesPerRunMax = 50;
/** The error kept on a failed run, cut to what the column holds. */
const runErrorLengthMax = 1_000;
export const settlementActor = 'stream-settlement';

export type RunOptions = {
  /** The instant the run settles as of: the job passes the database's clock, tests and drills their own. */
  asOf: Date;
  batchSize?: number;
  batchesMax?: number;
};

/** A stream whose settlement a refusal rolled back (its savepoint): it stays due. */
export type Refusal = { streamId: string; type: string; detail: string };

export type BatchResult = { claimed: number; refused: Refusal[] };

export type RunResult = RunRow & { refused: Refusal[] };

const msOf = (date: Date) => BigInt(date.getTime());

/**
 * Settles one claimed stream as of `asOf`, under its row lock: what accrued since the last
 * settlement, when it reaches the minimum, or the whole remainder from the end on (then the
 * stream completes). Below the minimum the stream only waits for its next settlement time.
 * Returns the minor units paid.
 */
async function settleStream(tx: Tx, stream: StreamRow, runId: string, asOf: Date): Promise<bigint> {
  const schedule = scheduleOf(stream);
  const atMs = msOf(asOf);
  const dueMinor = accruedAt(schedule, atMs) - stream.settledMinor;
  const final = atMs >= schedule.endMs;
  const next = final ? null : new Date(Number(nextSettlementAfter(schedule, atMs)));
  if (!final && (dueMinor === 0n || dueMinor < stream.minimumMinor)) {
    assert(next, 'a stream before its end has a next settlement time');
    await postponeStream(tx, stream.id, next);
    return 0n;
  }
  // The settlement's key: (stream, period) is unique in stream_settlements, and the payout's
  // request id names it, so a period is paid once however often a run is retried.
  const period = Number(periodAt(schedule, atMs));
  const actor = { name: settlementActor, requestId: `stream:${stream.id}:period:${period}` };
  const before = streamView(stream, asOf);
  const paid = await payRecipient(tx, stream, dueMinor, actor);
  await insertSettlement(tx, {
    streamId: stream.id,
    cause: 'run',
    runId,
    periodIndex: period,
    amountMinor: dueMinor,
    asOf,
    ...paid,
  });
  const moved = await moveStream(tx, {
    streamId: stream.id,
    transition: final ? 'completed' : 'settled',
    settledMinor: dueMinor,
    refundedMinor: 0n,
    nextSettlementAt: next,
    cancelledAt: null,
  });
  assert(moved, `stream ${stream.id} changed under its row lock`);
  const row = await selectStream(tx, stream.id);
  assert(row, `stream ${stream.id} vanished`);
  const after = streamView(row, asOf);
  const detail = {
    settledAmount: formatAmount(dueMinor, stream.precision),
    runId,
    periodIndex: period,
    ...paid,
  };
  const events = streamEvents('stream.settled', after, detail);
  if (final) events.push(...streamEvents('stream.completed', after));
  await Promise.all([
    appendAudit(tx, {
      actor: settlementActor,
      action: final ? 'stream.completed' : 'stream.settled',
      subjectType: 'stream',
      subjectId: stream.id,
      before,
      after: { ...after, ...detail },
      requestId: actor.requestId,
    }),
    emitEvents(tx, events),
  ]);
  return dueMinor;
}

/**
 * One bounded batch of a run, in the caller's transaction: claims at most `limit` due streams
 * (skipping those another run or a cancellation holds, and those refused earlier in this run),
 * locks every account they touch in one call, and settles each in a savepoint, so one refused
 * stream (a destination the payouts path refuses, read_only mode) rolls back alone and stays
 * due. Adds what it paid to the run's row in the same transaction: a batch rolled back leaves no
 * trace of itself in the run.
 */
export async function settleBatch(
  tx: Tx,
  input: { runId: string; asOf: Date; limit: number; skip: readonly string[] },
): Promise<BatchResult> {
  const streams = await claimDueStreams(tx, input.asOf, input.limit, input.skip);
  if (streams.length === 0) return { claimed: 0, refused: [] };
  await lockStreamAccounts(tx, streams);
  const paid: { assets: string[]; minors: bigint[] } = { assets: [], minors: [] };
  const refused: Refusal[] = [];
  for (const stream of streams) {
    try {
      const minor = await tx.savepoint((savepoint) =>
        settleStream(savepoint, stream, input.runId, input.asOf),
      );
      if (minor > 0n) {
        paid.assets.push(stream.asset);
        paid.minors.push(minor);
      }
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      refused.push({ streamId: stream.id, type: error.type, detail: error.message });
    }
  }
  if (paid.assets.length > 0) await addToRun(tx, input.runId, paid);
  return { claimed: streams.length, refused };
}

/** Records the start of a run, committed on its own: a run that never finishes stays `running`. */
export async function startRun(sql: Sql, asOf: Date): Promise<string> {
  const runId = randomUUID();
  await insertRun(sql, { id: runId, asOf });
  return runId;
}

export async function finishRun(
  sql: Sql,
  runId: string,
  outcome: 'succeeded' | 'partial' | 'failed',
  error: string | null = null,
): Promise<RunRow> {
  const row = await finishRunRow(sql, runId, outcome, error?.slice(0, runErrorLengthMax) ?? null);
  streamSettlementRuns.inc({ result: outcome });
  return row;
}

/**
 * A settlement run as of `options.asOf`: its row, then one transaction per batch until no due
 * stream is left or the batch bound is reached, then its outcome (`partial` when a stream was
 * refused). A failure that is not a refusal marks the run `failed` and is rethrown (the job
 * retries). The batches already committed stay paid; the next run settles only what accrued since.
 */
export async function runSettlement(sql: Sql, options: RunOptions): Promise<RunResult> {
  const batchSize = options.batchSize ?? settlementBatchMax;
  const batchesMax = options.batchesMax ?? settlementBatchesPerRunMax;
  const runId = await startRun(sql, options.asOf);
  const refused: Refusal[] = [];
  try {
    for (let batch = 0; batch < batchesMax; batch += 1) {
      const result = await withTransaction(sql, (tx) =>
        settleBatch(tx, {
          runId,
          asOf: options.asOf,
          limit: batchSize,
          skip: refused.map((refusal) => refusal.streamId),
        }),
      );
      refused.push(...result.refused);
      if (result.claimed < batchSize) break;
    }
  } catch (error) {
    await finishRun(sql, runId, 'failed', error instanceof Error ? error.message : String(error));
    throw error;
  }
  const row = await finishRun(sql, runId, refused.length > 0 ? 'partial' : 'succeeded');
  return { ...row, refused };
}
