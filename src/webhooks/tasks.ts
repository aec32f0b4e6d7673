import { assert } from '../platform/assert.ts';
import type { Sql } from '../platform/db/types.ts';
import { isUuid } from '../platform/ids.ts';
import { enqueueJob, type TaskMap } from '../platform/jobs.ts';
import type { Runtime } from '../platform/runtime.ts';
import { endpointAddressPolicy } from './address-policy.ts';
import { selectOverdueDeliveries } from './data.ts';
import { type DeliveryDeps, deliverOnce } from './delivery.ts';
import { deliverJobAttemptsMax, deliverTask, deliveryJobKeyPrefix } from './events.ts';
import { countGaugesFrom } from './metrics.ts';
import { endpointSecretBox } from './secrets.ts';

export const sweepTask = 'merchant_webhooks_sweep';
/** Every minute: a lost job delays a delivery by at most the grace plus a minute. */
export const merchantWebhooksCrontab = `* * * * * ${sweepTask}`;
/** Overdue by more than this, a pending delivery nobody is sending has lost its job. */
export const sweepGraceMs = 120_000;
export const sweepBatchMax = 100;

function deliveryIdOf(payload: unknown): string {
  const id = (payload as { deliveryId?: unknown } | null)?.deliveryId;
  // Only this module enqueues the task, always with a delivery id: anything else is our bug.
  assert(isUuid(id), `${deliverTask} needs a deliveryId, got ${JSON.stringify(payload)}`);
  return id;
}

/**
 * Queues a job again for each delivery whose job was lost. The job key makes this safe to repeat:
 * a delivery that still has its job gets that job moved up, not a second one.
 */
export async function sweepOverdueDeliveries(sql: Sql): Promise<number> {
  const overdue = await selectOverdueDeliveries(sql, sweepGraceMs, sweepBatchMax);
  for (const { id } of overdue) {
    await enqueueJob(
      sql,
      deliverTask,
      { deliveryId: id },
      { jobKey: `${deliveryJobKeyPrefix}${id}`, maxAttempts: deliverJobAttemptsMax },
    );
  }
  return overdue.length;
}

export function deliveryDeps(runtime: Runtime): DeliveryDeps {
  return {
    sql: runtime.sql,
    options: runtime.config.merchantWebhooks,
    secrets: endpointSecretBox(runtime.config),
    policy: endpointAddressPolicy(runtime.config.merchantWebhooks),
    logger: runtime.logger,
  };
}

export function merchantWebhookTasks(runtime: Runtime): TaskMap {
  countGaugesFrom(runtime.sql);
  const deps = deliveryDeps(runtime);
  return {
    [deliverTask]: async (payload) => {
      await deliverOnce(deps, deliveryIdOf(payload));
    },
    [sweepTask]: async () => {
      const swept = await sweepOverdueDeliveries(runtime.sql);
      if (swept > 0)
        runtime.logger.warn({ swept }, 'merchant webhook deliveries had lost their job: queued again');
    },
  };
}
