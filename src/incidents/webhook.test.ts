import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { createLogger } from '../platform/logging.ts';
import { newEndpointSecret } from '../webhooks/signing.ts';
import { type MerchantServer, startMerchantServer } from '../webhooks/test-support.ts';
import { runEscalations } from './escalation-runner.ts';
import { changeStatus, declareIncident } from './service.ts';
import { deliverStepWebhook, WebhookRetryableError, webhookAttemptsMax, webhookTask } from './webhook.ts';

/**
 * The outbound incident webhook against a local HTTP receiver that verifies the Standard Webhooks
 * signature with the reference library: enqueued with the step, sent with the incident's current
 * state, retried on 5xx within a bounded number of attempts, dropped on 4xx.
 */

let service: TestService;
let receiver: MerchantServer;
const secret = newEndpointSecret();
const alice = { name: 'alice', requestId: undefined };
const silent = createLogger('silent');
const minute = 60_000;

beforeAll(async () => {
  receiver = await startMerchantServer(() => ({ status: 204 }));
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
  await receiver.close();
});

function webhookDeps() {
  return { sql: service.db.sql, config: { url: receiver.url, secret }, logger: silent };
}

async function jobsFor(stepId: string) {
  return service.db.sql<{ maxAttempts: number }[]>`
    select max_attempts as "maxAttempts" from graphile_worker.jobs
    where task_identifier = ${webhookTask}::text and key = ${`${webhookTask}:step:${stepId}`}::text`;
}

/** Declares a P0 and runs its first step (engineering lead, at 30 minutes); returns the incident and step ids. */
async function firstStepOf(title: string, webhook: boolean): Promise<{ incidentId: string; stepId: bigint }> {
  const sql = service.db.sql;
  const incident = await declareIncident(sql, { title, severity: 'P0' }, alice);
  await runEscalations(
    { sql, logger: silent, webhook },
    new Date(Date.parse(incident.declaredAt) + 31 * minute),
  );
  const [step] = await sql<{ id: bigint }[]>`
    select id from incident_escalation_steps where incident_id = ${incident.id}::uuid and state = 'done'`;
  expect(step).toBeDefined();
  return { incidentId: incident.id, stepId: step?.id ?? 0n };
}

describe('the incident webhook', () => {
  it('is enqueued with the step and delivers the current incident, signed and verifiable', async () => {
    const { incidentId, stepId } = await firstStepOf('horizon down', true);
    expect(await jobsFor(stepId.toString())).toEqual([{ maxAttempts: webhookAttemptsMax }]);
    // Identified after the step ran: the delivery carries the state at sending time.
    await changeStatus(service.db.sql, incidentId, 'identified', 'provider outage', alice);
    expect(await deliverStepWebhook(webhookDeps(), stepId)).toBe('delivered');
    const request = receiver.received.at(-1);
    const verified = new Webhook(secret).verify(request?.body ?? '', request?.headers ?? {}) as {
      type: string;
      data: { incident: { id: string; status: string }; step: { target: string; state: string } };
    };
    expect(verified.type).toBe('incident.escalation_step');
    expect(verified.data.incident).toMatchObject({ id: incidentId, status: 'identified' });
    expect(verified.data.step).toMatchObject({ target: 'engineering_lead', state: 'done' });
    expect(request?.headers['webhook-id']).toBe(`incident_step_${stepId}`);
    expect(() =>
      new Webhook(newEndpointSecret()).verify(request?.body ?? '', request?.headers ?? {}),
    ).toThrow();
  });

  it('throws to be retried on a 5xx and drops a 4xx', async () => {
    const { stepId } = await firstStepOf('api down', true);
    receiver.behave(() => ({ status: 503 }));
    await expect(deliverStepWebhook(webhookDeps(), stepId)).rejects.toBeInstanceOf(WebhookRetryableError);
    receiver.behave(() => ({ status: 410 }));
    expect(await deliverStepWebhook(webhookDeps(), stepId)).toBe('refused');
    receiver.behave(() => ({ status: 204 }));
  });

  it('is not enqueued when no webhook is configured', async () => {
    const { stepId } = await firstStepOf('quiet', false);
    expect(await jobsFor(stepId.toString())).toEqual([]);
  });
});
