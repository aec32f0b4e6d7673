import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import type { TaskMap } from '../platform/jobs.ts';
import { expireDueHolds, expiryBatchesPerRunMax, expiryBatchMax } from './service.ts';

export const expireTask = 'escrow_expire';
export const escrowCrontab = `* * * * * ${expireTask}`;

/**
 * Applies the expiry outcome of holds past their expiresAt, in (expires_at, id) order, one bounded
 * batch per transaction. Reads and writes already treat such a hold as expired; this moves its
 * money and makes its stored state say so.
 */
export function escrowTasks(sql: Sql): TaskMap {
  return {
    [expireTask]: async () => {
      for (let batch = 0; batch < expiryBatchesPerRunMax; batch += 1) {
        const expired = await withTransaction(sql, (tx) => expireDueHolds(tx, expiryBatchMax));
        if (expired < expiryBatchMax) return;
      }
    },
  };
}
