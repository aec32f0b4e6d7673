import type { Sql } from '../platform/db/types.ts';
import type { TaskMap } from '../platform/jobs.ts';
import { deleteKeysOlderThan } from './idempotency.ts';

export const purgeTask = 'idempotency_purge';
export const idempotencyCrontab = `*/10 * * * * ${purgeTask}`;
const purgeBatchMax = 5_000;
const purgeBatchesPerRunMax = 20;

/** Deletes expired keys in bounded batches so one run never holds a long lock. */
export function idempotencyTasks(sql: Sql, retentionSeconds: number): TaskMap {
  return {
    [purgeTask]: async () => {
      for (let batch = 0; batch < purgeBatchesPerRunMax; batch += 1) {
        if ((await deleteKeysOlderThan(sql, retentionSeconds, purgeBatchMax)) < purgeBatchMax) return;
      }
    },
  };
}
