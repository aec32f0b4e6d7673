import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/process.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { creditDeposit } from '../deposits/credit.ts';
import type { PayoutRow } from '../payouts/data.ts';
import type { Worker } from '../platform/jobs.ts';
import { startJobs } from '../server.ts';
import { postSigned, responseBodyBytesMax, retryDelayMs } from './delivery.ts';
import { emitEvents, payoutFinishedEvent } from './events.ts';
import { merchantWebhookDeliveries } from './metrics.ts';
import {
  depositInput,
  loopbackReceiverEnv,
  type MerchantServer,
  merchantAccount,
  registerEndpoint,
  startMerchantServer,
} from './test-support.ts';

const attemptsMax = 5;
let service: TestService;
let worker: Worker;
const servers: MerchantServer[] = [];

beforeAll(async () => {
  service = await startTestService({
    env: {
      WORKER_POLL_INTERVAL_MS: '50',
      ...loopbackReceiverEnv,
      MERCHANT_WEBHOOK_ATTEMPTS_MAX: String(attemptsMax),
      MERCHANT_WEBHOOK_BACKOFF_BASE_MS: '20',
      MERCHANT_WEBHOOK_BACKOFF_CAP_MS: '200',
      MERCHANT_WEBHOOK_TIMEOUT_MS: '2000',
    },
  });
  worker = await startJobs(service.runtime, service.domains);
});

afterAll(async () => {
  await worker.stop();
  await Promise.all(servers.map((server) => server.close()));
  await service.close();
});

async function merchant(behaviour: Parameters<typeof startMerchantServer>[0]): Promise<MerchantServer> {
  const server = await startMerchantServer(behaviour);
  servers.push(server);
  return server;
}

async function outcomes(): Promise<Record<string, number>> {
  const metric = await merchantWebhookDeliveries.get();
  return Object.fromEntries(metric.values.map((value) => [String(value.labels.outcome), value.value]));
}

function fakePayout(accountId: string, amountMinor: bigint): PayoutRow {
  const now = new Date();
  return {
    id: crypto.randomUUID(),
    sourceAccountId: accountId,
    asset: 'XLM',
    precision: 7,
    amountMinor,
    destination: `G${'A'.repeat(55)}`,
    memoType: 'none',
    memoValue: null,
    approvalProposalId: null,
    state: 'submitted',
    stateReason: 'submitted',
    createdBy: 'merchant-app',
    finalJournalId: null,
    createdAt: now,
    updatedAt: now,
  };
}

type DeliveryState = { id: string; status: string; attempts: number; replays: number; eventId: string };

async function deliveriesTo(endpointId: string): Promise<DeliveryState[]> {
  return service.db.sql<DeliveryState[]>`
    select id, status, attempts, replays, event_id as "eventId" from merchant_webhook_deliveries
    where endpoint_id = ${endpointId}::uuid order by created_at, id`;
}

async function statusCodes(deliveryId: string): Promise<(number | null)[]> {
  const rows = await service.db.sql<{ statusCode: number | null }[]>`
    select status_code as "statusCode" from merchant_webhook_attempts where delivery_id = ${deliveryId}::uuid
    order by attempt`;
  return rows.map((row) => row.statusCode);
}

async function metricsText(): Promise<string> {
  const response = await service.app.inject({ method: 'GET', url: '/metrics' });
  return response.body;
}

describe('delivering to a merchant endpoint', () => {
  it('retries an endpoint that fails 3 times, then delivers each event exactly once, marked delivered after 4 attempts', async () => {
    const failuresPerEvent = 3;
    const seen = new Map<string, number>();
    const server = await merchant(({ headers }) => {
      const id = headers['webhook-id'] ?? '';
      const count = (seen.get(id) ?? 0) + 1;
      seen.set(id, count);
      return count <= failuresPerEvent ? { status: 500, body: 'not today' } : { status: 204 };
    });
    const accountId = await merchantAccount(service.db.sql, 'merchant-a');
    const endpoint = await registerEndpoint(service, {
      url: server.url,
      eventTypes: ['deposit.credited', 'payout.settled', 'payout.failed'],
      ownerRef: 'merchant-a',
    });
    const before = await outcomes();
    await service.db.sql.begin(async (tx) => {
      await creditDeposit(tx, depositInput(accountId, '12.5'));
      const settled = fakePayout(accountId, 10_000_000n);
      const failed = fakePayout(accountId, 20_000_000n);
      await emitEvents(tx, [
        payoutFinishedEvent('payout.settled', settled, 'attempt_succeeded', undefined),
        payoutFinishedEvent('payout.failed', failed, 'operation_failed', 'op_no_destination'),
      ]);
    });

    const deliveries = await waitFor(
      async () => {
        const rows = await deliveriesTo(endpoint.id);
        return rows.length === 3 && rows.every((row) => row.status === 'delivered') ? rows : undefined;
      },
      30_000,
      'three deliveries to be delivered',
    );
    for (const delivery of deliveries) {
      expect(delivery.attempts).toBe(failuresPerEvent + 1);
      expect(await statusCodes(delivery.id)).toEqual([500, 500, 500, 204]);
    }
    // Exactly one successful request per event; every attempt of an event is the same message.
    const verifier = new Webhook(endpoint.secret);
    const types: string[] = [];
    for (const delivery of deliveries) {
      const requests = server.received.filter(
        (request) => request.headers['webhook-id'] === delivery.eventId,
      );
      expect(requests).toHaveLength(failuresPerEvent + 1);
      expect(requests.filter((request) => request.answered === 204)).toHaveLength(1);
      expect(new Set(requests.map((request) => request.body)).size).toBe(1);
      for (const request of requests) {
        const payload = verifier.verify(request.body, request.headers) as { type: string };
        expect(request.headers['content-type']).toBe('application/json');
        types.push(payload.type);
      }
    }
    expect(new Set(types)).toEqual(new Set(['deposit.credited', 'payout.settled', 'payout.failed']));
    const deposit = server.received.find((request) => request.body.includes('deposit.credited'));
    expect(JSON.parse(deposit?.body ?? '{}').data).toMatchObject({
      accountId,
      asset: 'XLM',
      amount: '12.5000000',
    });
    // Give a stray duplicate job the chance to show itself before counting the requests.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(server.received).toHaveLength(3 * (failuresPerEvent + 1));
    const after = await outcomes();
    expect((after.delivered ?? 0) - (before.delivered ?? 0)).toBe(3);
    expect((after.failed_attempt ?? 0) - (before.failed_attempt ?? 0)).toBe(3 * failuresPerEvent);
  });

  it('dead-letters a dead endpoint after the maximum attempts, and a replay delivers it once it is back', async () => {
    const server = await merchant(() => 'drop');
    const accountId = await merchantAccount(service.db.sql, 'merchant-dead');
    const endpoint = await registerEndpoint(service, {
      url: server.url,
      eventTypes: ['deposit.credited'],
      ownerRef: 'merchant-dead',
    });
    const before = await outcomes();
    await service.db.sql.begin((tx) => creditDeposit(tx, depositInput(accountId, '3')));
    const [dead] = await waitFor(
      async () => {
        const rows = await deliveriesTo(endpoint.id);
        return rows[0]?.status === 'dead_lettered' ? rows : undefined;
      },
      30_000,
      'the delivery to be dead-lettered',
    );
    expect(dead?.attempts).toBe(attemptsMax);
    expect(server.received).toHaveLength(attemptsMax);
    expect(await statusCodes(dead?.id ?? '')).toEqual(Array.from({ length: attemptsMax }, () => null));
    const after = await outcomes();
    expect((after.dead_lettered ?? 0) - (before.dead_lettered ?? 0)).toBe(1);
    expect(await metricsText()).toMatch(/^merchant_webhook_dead_letters [1-9]/m);
    const audit = await service.db.sql`
      select 1 from audit_log where action = 'merchant_webhook.dead_lettered' and subject_id = ${dead?.id ?? ''}`;
    expect(audit).toHaveLength(1);

    const operator = `Bearer ${await service.token('operator', 'otto')}`;
    const listed = await service.app.inject({
      method: 'GET',
      url: `/v1/webhook-endpoints/deliveries?status=dead_lettered&endpointId=${endpoint.id}`,
      headers: { authorization: operator },
    });
    expect(listed.json().items.map((item: { id: string }) => item.id)).toEqual([dead?.id]);
    const detail = await service.app.inject({
      method: 'GET',
      url: `/v1/webhook-endpoints/deliveries/${dead?.id}`,
      headers: { authorization: operator },
    });
    expect(detail.json().log).toHaveLength(attemptsMax);
    expect(detail.json().log[0]).toMatchObject({ attempt: 1, statusCode: null });

    server.behave(() => ({ status: 200, body: 'ok' }));
    const replay = await service.app.inject({
      method: 'POST',
      url: `/v1/webhook-endpoints/deliveries/${dead?.id}/replay`,
      headers: { authorization: operator },
    });
    expect(replay.statusCode, replay.body).toBe(200);
    expect(replay.json()).toMatchObject({ status: 'pending', replays: 1 });
    const [delivered] = await waitFor(
      async () => {
        const rows = await deliveriesTo(endpoint.id);
        return rows[0]?.status === 'delivered' ? rows : undefined;
      },
      30_000,
      'the replayed delivery to be delivered',
    );
    expect(delivered).toMatchObject({ attempts: attemptsMax + 1, replays: 1 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const answered = server.received.filter((request) => request.answered === 200);
    expect(answered).toHaveLength(1);
    // The same message as the dead-lettered attempts, so the merchant can drop a duplicate.
    expect(answered[0]?.headers['webhook-id']).toBe(dead?.eventId);
    expect(answered[0]?.body).toBe(server.received[0]?.body);
    expect(() =>
      new Webhook(endpoint.secret).verify(answered[0]?.body ?? '', answered[0]?.headers ?? {}),
    ).not.toThrow();

    const again = await service.app.inject({
      method: 'POST',
      url: `/v1/webhook-endpoints/deliveries/${dead?.id}/replay`,
      headers: { authorization: operator },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().type).toBe('merchant-webhook/not-dead-lettered');
    const replayed = await service.db.sql`
      select 1 from audit_log where action = 'merchant_webhook.delivery_replayed' and subject_id = ${dead?.id ?? ''}`;
    expect(replayed).toHaveLength(1);
  });

  it('dead-letters the pending deliveries of a disabled endpoint without sending them', async () => {
    const server = await merchant(() => ({ status: 200 }));
    const accountId = await merchantAccount(service.db.sql, 'merchant-off');
    const endpoint = await registerEndpoint(service, {
      url: server.url,
      eventTypes: ['deposit.credited'],
      ownerRef: 'merchant-off',
    });
    const admin = `Bearer ${await service.token('admin', 'ada')}`;
    // Disabled inside the transaction that emits, so the delivery exists but the endpoint is off.
    await service.db.sql.begin(async (tx) => {
      await creditDeposit(tx, depositInput(accountId, '1'));
      await tx`update merchant_webhook_endpoints set enabled = false where id = ${endpoint.id}::uuid`;
    });
    const [delivery] = await waitFor(
      async () => {
        const rows = await deliveriesTo(endpoint.id);
        return rows[0]?.status === 'dead_lettered' ? rows : undefined;
      },
      30_000,
      'the delivery to the disabled endpoint to be dead-lettered',
    );
    expect(delivery?.attempts).toBe(0);
    expect(server.received).toHaveLength(0);
    const refused = await service.app.inject({
      method: 'POST',
      url: `/v1/webhook-endpoints/deliveries/${delivery?.id}/replay`,
      headers: { authorization: admin },
    });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().type).toBe('merchant-webhook/endpoint-disabled');
  });
});

describe('one HTTP attempt', () => {
  it('does not follow a redirect, and counts it as a failed attempt', async () => {
    const target = await merchant(() => ({ status: 200 }));
    const redirecting = await merchant(() => ({ status: 302, headers: { location: target.url } }));
    const result = await postSigned(redirecting.url, {}, '{}', 2_000);
    expect(result).toMatchObject({ ok: false, statusCode: 302 });
    expect(result.error).toContain('not followed');
    expect(target.received).toHaveLength(0);
  });

  it('gives up after the timeout and keeps only a bounded part of a large response', async () => {
    const hanging = await merchant(() => 'hang');
    const timedOut = await postSigned(hanging.url, {}, '{}', 300);
    expect(timedOut).toMatchObject({ ok: false, statusCode: null, error: 'no response within 300 ms' });
    expect(hanging.received).toHaveLength(1);

    const chatty = await merchant(() => ({ status: 400, body: 'x'.repeat(100_000) }));
    const bounded = await postSigned(chatty.url, {}, '{}', 2_000);
    expect(bounded).toMatchObject({ ok: false, statusCode: 400, error: 'HTTP 400' });
    expect(bounded.responseBody).toHaveLength(responseBodyBytesMax);
  });

  it('waits a capped, jittered, growing time between attempts', () => {
    const options = { attemptsMax: 8, timeoutMs: 1_000, backoffBaseMs: 10_000, backoffCapMs: 28_800_000 };
    const low = () => 0;
    const high = () => 1;
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(attempt, options, high))).toEqual([
      10_000, 40_000, 160_000, 640_000,
    ]);
    expect(retryDelayMs(1, options, low)).toBe(5_000);
    expect(retryDelayMs(20, options, high)).toBe(28_800_000);
    expect(retryDelayMs(20, options, low)).toBe(14_400_000);
  });
});
