import type { Sql } from '../platform/db/types.ts';
import type { TaskMap } from '../platform/jobs.ts';
import { sealAuditLog } from './audit.ts';

export const sealTask = 'audit_seal';
export const auditCrontab = `* * * * * ${sealTask}`;

export function auditTasks(sql: Sql): TaskMap {
  return {
    [sealTask]: async () => {
      await sealAuditLog(sql);
    },
  };
}
