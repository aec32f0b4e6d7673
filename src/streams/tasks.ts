import type { Sql } from '../platform/db/types.ts';
import type { TaskMap } from '../platform/jobs.ts';
import { settlementLagFrom } from './metrics.ts';
import { databaseNow } from './service.ts';
import { runSettlement } from './settlement.ts';

export const settleStreamsTask = 'streams_settle';
export const streamsCrontab = `* * * * * ${settleStreamsTask}`;

/**
 * Every minute, one settlement run as of the database's clock. A refused stream is logged once
 * per run and stays due (stream_settlement_lag_seconds grows); a failed run fails the job, which
 * worker_runs_total counts and graphile-worker retries.
 */
export function streamTasks(sql: Sql): TaskMap {
  settlementLagFrom(sql);
  return {
    [settleStreamsTask]: async (_payload, helpers) => {
      const run = await runSettlement(sql, { asOf: await databaseNow(sql) });
      for (const refusal of run.refused) {
        helpers.logger.warn(`stream ${refusal.streamId} not settled: ${refusal.type}`, {
          runId: run.id,
          streamId: refusal.streamId,
          detail: refusal.detail,
        });
      }
      helpers.logger.info('stream settlement run finished', {
        runId: run.id,
        outcome: run.outcome,
        streamsSettled: run.streamsSettled,
        refused: run.refused.length,
        durationMs: (run.finishedAt?.getTime() ?? 0) - run.startedAt.getTime(),
      });
    },
  };
}
