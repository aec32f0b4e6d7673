import type { TaskMap } from '../platform/jobs.ts';
import type { Runtime } from '../platform/runtime.ts';
import { sealAuditLog, writeAuditCheckpoint } from './audit.ts';

export const sealTask = 'audit_seal';
export const checkpointTask = 'audit_checkpoint';
export const auditCrontab = [`* * * * * ${sealTask}`, `* * * * * ${checkpointTask}`].join('\n');

export function auditTasks(runtime: Pick<Runtime, 'sql' | 'keyring'>): TaskMap {
  return {
    [sealTask]: async () => {
      await sealAuditLog(runtime.sql);
    },
    // Seals first so the checkpoint is of the freshest head; a seal already running elsewhere
    // makes this one a no-op (advisory lock).
    [checkpointTask]: async () => {
      await sealAuditLog(runtime.sql);
      await writeAuditCheckpoint(runtime.sql, runtime.keyring);
    },
  };
}
