import { assert } from '../platform/assert.ts';
import type { IncidentWebhookConfig } from '../platform/config.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { enqueueJob } from '../platform/jobs.ts';
import type { Logger } from '../platform/logging.ts';
import { postSigned } from '../webhooks/delivery.ts';
import { secretKey, signedHeaders } from '../webhooks/signing.ts';
import { selectIncident } from './data.ts';
import { selectStep } from './escalation-data.ts';
import { stepView } from './escalation-steps.ts';
import { incidentView } from './service.ts';

/**
 * The outbound incident webhook: each escalation step, signed like merchant webhooks (Standard
 * Webhooks), delivered by a job enqueued in the step's transaction. The body is built when the job
 * runs, from the incident as it is then: Grafana OnCall's open bug is a repeated step re-sending
 * the payload of its first run.
 */

export const webhookTask = 'incident_webhook';
/** graphile-worker retries a failed job with exponential backoff (about 1.5 hours over 8 attempts). */
export const webhookAttemptsMax = 8;
export const webhookTimeoutMs = 10_000;
export const stepEventType = 'incident.escalation_step';

export async function enqueueStepWebhook(db: Executor, stepId: bigint): Promise<void> {
  await enqueueJob(
    db,
    webhookTask,
    { stepId: stepId.toString() },
    { jobKey: `${webhookTask}:step:${stepId}`, maxAttempts: webhookAttemptsMax },
  );
}

export type WebhookDeps = { sql: Sql; config: IncidentWebhookConfig; logger: Logger };

/** Thrown for a failure worth retrying (no response, 408, 429, 5xx): the job runs again. */
export class WebhookRetryableError extends Error {
  override name = 'WebhookRetryableError';
}

/**
 * One attempt. A 2xx delivers; a 4xx other than 408 and 429 will not change on retry (as for
 * Alertmanager's receivers) and is logged and dropped; anything else throws, to be retried.
 */
export async function deliverStepWebhook(
  deps: WebhookDeps,
  stepId: bigint,
): Promise<'delivered' | 'refused'> {
  const step = await selectStep(deps.sql, stepId);
  const incident = step ? await selectIncident(deps.sql, step.incidentId) : undefined;
  // Steps and incidents are never deleted, and the job is enqueued with its step.
  assert(step && incident, `incident webhook for step ${stepId}, which does not exist`);
  const now = new Date();
  const body = JSON.stringify({
    type: stepEventType,
    timestamp: now.toISOString(),
    data: { incident: incidentView(incident, now), step: stepView(step) },
  });
  const message = {
    id: `incident_step_${stepId}`,
    timestampSeconds: Math.floor(now.getTime() / 1_000),
    body,
  };
  const headers = signedHeaders(secretKey(deps.config.secret), message);
  const result = await postSigned(deps.config.url, headers, body, webhookTimeoutMs);
  const fields = { stepId: stepId.toString(), incidentId: incident.id, statusCode: result.statusCode };
  if (result.ok) {
    deps.logger.info({ ...fields, durationMs: result.durationMs }, 'incident webhook delivered');
    return 'delivered';
  }
  const status = result.statusCode ?? 0;
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
    deps.logger.error({ ...fields, error: result.error }, 'incident webhook refused: not retried');
    return 'refused';
  }
  throw new WebhookRetryableError(`incident webhook for step ${stepId} failed: ${result.error}`);
}
