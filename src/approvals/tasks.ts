import type { Sql } from '../platform/db/types.ts';
import type { TaskMap } from '../platform/jobs.ts';
import type { Approvals } from './engine.ts';

export const expireTask = 'approvals_expire';
export const approvalsCrontab = `* * * * * ${expireTask}`;

/** Expiry is also enforced at review time; this job makes `state` truthful for lists and alerts. */
export function approvalTasks(sql: Sql, approvals: Approvals): TaskMap {
  return {
    [expireTask]: async () => {
      await approvals.expireDue(sql);
    },
  };
}
