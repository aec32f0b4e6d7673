import { assert } from '../platform/assert.ts';
import type { TaskMap } from '../platform/jobs.ts';
import type { Runtime } from '../platform/runtime.ts';
import { countOverdueRemindersFrom } from './escalation-metrics.ts';
import { runEscalations } from './escalation-runner.ts';
import { escalateTask } from './escalation-steps.ts';
import { deliverStepWebhook, webhookTask } from './webhook.ts';

/** Every minute, besides the job each declaration enqueues for its first due step. */
export const escalationCrontab = `* * * * * ${escalateTask}`;

function stepIdOf(payload: unknown): bigint {
  const id = (payload as { stepId?: unknown } | null)?.stepId;
  // Only enqueueStepWebhook enqueues the task, always with a step id: anything else is our bug.
  assert(
    typeof id === 'string' && /^[0-9]{1,18}$/.test(id),
    `${webhookTask} needs a stepId, got ${JSON.stringify(payload)}`,
  );
  return BigInt(id);
}

export function escalationTasks(runtime: Runtime): TaskMap {
  countOverdueRemindersFrom(runtime.sql);
  const webhook = runtime.config.incidentWebhook;
  const deps = { sql: runtime.sql, logger: runtime.logger, webhook: webhook !== undefined };
  return {
    [escalateTask]: async () => {
      await runEscalations(deps, new Date());
    },
    [webhookTask]: async (payload) => {
      // Enqueued only while a webhook was configured; one removed since has nowhere to go.
      if (webhook === undefined) {
        runtime.logger.warn({ payload }, 'incident webhook job without INCIDENT_WEBHOOK_URL: dropped');
        return;
      }
      await deliverStepWebhook(
        { sql: runtime.sql, config: webhook, logger: runtime.logger },
        stepIdOf(payload),
      );
    },
  };
}
