import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { creditDeposit } from '../deposits/credit.ts';
import { endpointAddressPolicy } from './address-policy.ts';
import { deliverOnce } from './delivery.ts';
import { deliverTask, deliveryJobKeyPrefix } from './events.ts';
import { countGaugesFrom } from './metrics.ts';
import { EndpointSecretBox, endpointSecretBox } from './secrets.ts';
import { createEndpoint, endpointsEnabledMax } from './service.ts';
import { newEndpointSecret } from './signing.ts';
import { deliveryDeps, merchantWebhookTasks, sweepGraceMs, sweepOverdueDeliveries } from './tasks.ts';
import {
  depositInput,
  loopbackReceiverEnv,
  type MerchantServer,
  merchantAccount,
  startMerchantServer,
} from './test-support.ts';

let service: TestService;
let server: MerchantServer;

beforeAll(async () => {
  // The receiver is on 127.0.0.1: allowed, while plain http stays refused at registration.
  service = await startTestService({
    env: { MERCHANT_WEBHOOK_ALLOWED_HOSTS: loopbackReceiverEnv.MERCHANT_WEBHOOK_ALLOWED_HOSTS },
  });
  server = await startMerchantServer(() => ({ status: 200 }));
});

afterAll(async () => {
  await server.close();
  await service.close();
});

async function post(url: string, payload: unknown, role: Parameters<TestService['token']>[0] = 'admin') {
  return service.app.inject({
    method: 'POST',
    url,
    payload: payload as Record<string, unknown>,
    headers: { authorization: `Bearer ${await service.token(role, `${role}-user`)}` },
  });
}

async function stored(): Promise<{ endpoints: number; audit: number }> {
  const [row] = await service.db.sql<{ endpoints: number; audit: number }[]>`
    select (select count(*)::int from merchant_webhook_endpoints) as endpoints,
      (select count(*)::int from audit_log where action like 'merchant_webhook.%') as audit`;
  return row ?? { endpoints: -1, audit: -1 };
}

const valid = { url: 'https://merchant.example/hooks', eventTypes: ['deposit.credited'], ownerRef: 'acme' };

describe('registering endpoints: forbidden paths', () => {
  it('refuses bad URLs, unknown event types, bad shapes and non-admin callers with a problem, storing nothing', async () => {
    const cases: [unknown, Parameters<TestService['token']>[0], number, string][] = [
      [{ ...valid, url: 'not a url' }, 'admin', 400, 'merchant-webhook/invalid-url'],
      [{ ...valid, url: 'ftp://merchant.example/hooks' }, 'admin', 400, 'merchant-webhook/invalid-url'],
      [{ ...valid, url: 'http://merchant.example/hooks' }, 'admin', 400, 'merchant-webhook/invalid-url'],
      [{ ...valid, url: 'https://user:pw@merchant.example/' }, 'admin', 400, 'merchant-webhook/invalid-url'],
      [{ ...valid, url: 'https://merchant.example/#x' }, 'admin', 400, 'merchant-webhook/invalid-url'],
      [
        { ...valid, url: `https://merchant.example/${'a'.repeat(2_048)}` },
        'admin',
        400,
        'request/validation',
      ],
      [
        { ...valid, eventTypes: ['deposit.credited', 'escrow.nope'] },
        'admin',
        400,
        'merchant-webhook/unknown-event-type',
      ],
      [{ ...valid, eventTypes: [] }, 'admin', 400, 'request/validation'],
      [{ ...valid, ownerRef: undefined }, 'admin', 400, 'request/validation'],
      [{ ...valid, secret: 'whsec_mine' }, 'admin', 400, 'request/validation'],
      [valid, 'operator', 403, 'auth/forbidden'],
      [valid, 'viewer', 403, 'auth/forbidden'],
      [valid, 'service', 403, 'auth/forbidden'],
    ];
    for (const [payload, role, status, type] of cases) {
      const response = await post('/v1/webhook-endpoints', payload, role);
      expect(response.statusCode, JSON.stringify(payload)).toBe(status);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().type).toBe(type);
    }
    const anonymous = await service.app.inject({
      method: 'POST',
      url: '/v1/webhook-endpoints',
      payload: valid,
    });
    expect(anonymous.statusCode).toBe(401);
    const unknown = await post('/v1/webhook-endpoints', { ...valid, eventTypes: ['payout.lost'] });
    expect(unknown.json().unknown).toEqual(['payout.lost']);
    expect(await stored()).toEqual({ endpoints: 0, audit: 0 });
  });

  it('shows the secret once, stores it sealed, and audits every change', async () => {
    const created = await post('/v1/webhook-endpoints', { ...valid, description: 'Acme shop' });
    expect(created.statusCode, created.body).toBe(201);
    const endpoint = created.json();
    expect(endpoint).toMatchObject({
      ...valid,
      enabled: true,
      createdBy: 'admin-user',
      description: 'Acme shop',
    });
    expect(endpoint.secret).toMatch(/^whsec_/);
    const [row] = await service.db.sql<{ sealed: Buffer }[]>`
      select secret_sealed as sealed from merchant_webhook_endpoints where id = ${endpoint.id}::uuid`;
    expect(row?.sealed.includes(Buffer.from(endpoint.secret))).toBe(false);
    expect(row?.sealed.includes(Buffer.from(endpoint.secret.slice(6)))).toBe(false);

    const admin = `Bearer ${await service.token('admin')}`;
    const listed = await service.app.inject({
      method: 'GET',
      url: '/v1/webhook-endpoints',
      headers: { authorization: admin },
    });
    expect(listed.body).not.toContain(endpoint.secret);
    expect(listed.json().items.map((item: { id: string }) => item.id)).toContain(endpoint.id);

    const disabled = await post(`/v1/webhook-endpoints/${endpoint.id}/disable`, { reason: 'merchant asked' });
    expect(disabled.json()).toMatchObject({ id: endpoint.id, enabled: false });
    const again = await post(`/v1/webhook-endpoints/${endpoint.id}/disable`, { reason: 'twice' });
    expect(again.json().enabled).toBe(false);
    const enabled = await post(`/v1/webhook-endpoints/${endpoint.id}/enable`, { reason: 'fixed' });
    expect(enabled.json().enabled).toBe(true);
    const actions = await service.db.sql<{ action: string; after: unknown }[]>`
      select action, after from audit_log where subject_id = ${endpoint.id}::text order by id`;
    expect(actions.map((entry) => entry.action)).toEqual([
      'merchant_webhook.endpoint_added',
      'merchant_webhook.endpoint_disabled',
      'merchant_webhook.endpoint_enabled',
    ]);
    expect(JSON.stringify(actions)).not.toContain(endpoint.secret.slice(6));

    const missing = '00000000-0000-4000-8000-000000000000';
    const notFound = await post(`/v1/webhook-endpoints/${missing}/disable`, { reason: 'x' });
    expect([notFound.statusCode, notFound.json().type]).toEqual([404, 'merchant-webhook/endpoint-not-found']);
    const noDelivery = await post(
      `/v1/webhook-endpoints/deliveries/${missing}/replay`,
      undefined,
      'operator',
    );
    expect([noDelivery.statusCode, noDelivery.json().type]).toEqual([
      404,
      'merchant-webhook/delivery-not-found',
    ]);
    const byOperator = await post(
      `/v1/webhook-endpoints/${endpoint.id}/disable`,
      { reason: 'x' },
      'operator',
    );
    expect(byOperator.statusCode).toBe(403);
  });
});

describe('a delivery job', () => {
  it('sends once when it runs twice, concurrently or after it was delivered, and the backlog gauge follows', async () => {
    const { sql, config } = service.runtime;
    const accountId = await merchantAccount(sql, 'twice-co');
    const { endpoint } = await createEndpoint(
      sql,
      {
        secrets: endpointSecretBox(config),
        allowHttp: true,
        policy: endpointAddressPolicy(config.merchantWebhooks),
      },
      { url: server.url, eventTypes: ['deposit.credited'], ownerRef: 'twice-co', description: null },
      { name: 'ada' },
    );
    await sql.begin((tx) => creditDeposit(tx, depositInput(accountId, '1')));
    const [delivery] = await sql<{ id: string }[]>`
      select id from merchant_webhook_deliveries where endpoint_id = ${endpoint.id}::uuid`;
    countGaugesFrom(sql);
    const metricsBefore = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(metricsBefore.body).toMatch(/^merchant_webhook_backlog 1$/m);

    const run = merchantWebhookTasks(service.runtime)[deliverTask];
    if (!run) throw new Error('no delivery task');
    const job = { deliveryId: delivery?.id };
    const helpers = {} as Parameters<typeof run>[1];
    await Promise.all([run(job, helpers), run(job, helpers)]);
    await run(job, helpers);
    expect(server.received).toHaveLength(1);
    const [row] = await sql<{ status: string; attempts: number }[]>`
      select status, attempts from merchant_webhook_deliveries where id = ${delivery?.id ?? ''}::uuid`;
    expect(row).toEqual({ status: 'delivered', attempts: 1 });

    countGaugesFrom(sql);
    const metricsAfter = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(metricsAfter.body).toMatch(/^merchant_webhook_backlog 0$/m);
    expect(metricsAfter.body).toMatch(/^merchant_webhook_dead_letters 0$/m);
    expect(metricsAfter.body).toMatch(/^merchant_webhook_deliveries_total\{outcome="delivered"\} 1$/m);
  });
});

describe('a delivery whose secret does not open', () => {
  it('fails the attempt without sending, so that it still ends in the dead-letter queue', async () => {
    const { sql, config } = service.runtime;
    const accountId = await merchantAccount(sql, 'sealed-co');
    const { endpoint } = await createEndpoint(
      sql,
      {
        secrets: endpointSecretBox(config),
        allowHttp: true,
        policy: endpointAddressPolicy(config.merchantWebhooks),
      },
      { url: server.url, eventTypes: ['deposit.credited'], ownerRef: 'sealed-co', description: null },
      { name: 'ada' },
    );
    // Sealed under another keyring key, as after a misconfigured SETTLEDESK_KEYRING_KEY.
    const foreign = new EndpointSecretBox(randomBytes(32)).seal(newEndpointSecret());
    await sql`update merchant_webhook_endpoints set secret_sealed = ${foreign}::bytea where id = ${endpoint.id}::uuid`;
    await sql.begin((tx) => creditDeposit(tx, depositInput(accountId, '1')));
    const [delivery] = await sql<{ id: string }[]>`
      select id from merchant_webhook_deliveries where endpoint_id = ${endpoint.id}::uuid`;
    const sent = server.received.length;
    const run = await deliverOnce(deliveryDeps(service.runtime), delivery?.id ?? '');
    expect(run).toMatchObject({ outcome: 'failed_attempt', attempt: 1 });
    expect(server.received).toHaveLength(sent);
    const [attempt] = await sql<{ error: string }[]>`
      select error from merchant_webhook_attempts where delivery_id = ${delivery?.id ?? ''}::uuid`;
    expect(attempt?.error).toContain('cannot be decrypted');
  });
});

describe('the sweep', () => {
  it('queues a job again for an overdue delivery that lost its job, and leaves one being sent alone', async () => {
    const { sql, config } = service.runtime;
    const accountId = await merchantAccount(sql, 'lost-co');
    const { endpoint } = await createEndpoint(
      sql,
      {
        secrets: endpointSecretBox(config),
        allowHttp: true,
        policy: endpointAddressPolicy(config.merchantWebhooks),
      },
      { url: server.url, eventTypes: ['deposit.credited'], ownerRef: 'lost-co', description: null },
      { name: 'ada' },
    );
    await sql.begin(async (tx) => {
      await creditDeposit(tx, depositInput(accountId, '1'));
      await creditDeposit(tx, depositInput(accountId, '2'));
    });
    const deliveries = await sql<{ id: string }[]>`
      select id from merchant_webhook_deliveries where endpoint_id = ${endpoint.id}::uuid order by id`;
    const ids = deliveries.map((row) => row.id);
    const keys = ids.map((id) => `${deliveryJobKeyPrefix}${id}`);
    await sql`select graphile_worker.remove_job(key) from unnest(${keys}::text[]) as key`;
    const overdue = `${sweepGraceMs / 1_000 + 60} seconds`;
    await sql`
      update merchant_webhook_deliveries set next_attempt_at = now() - ${overdue}::interval
      where id = any(${ids}::uuid[])`;
    await sql`
      update merchant_webhook_deliveries set lease_token = gen_random_uuid(), lease_until = now() + interval '1 minute'
      where id = ${ids[1] ?? ''}::uuid`;
    expect(await sweepOverdueDeliveries(sql)).toBe(1);
    const jobs = await sql<
      { key: string }[]
    >`select key from graphile_worker.jobs where key = any(${keys}::text[])`;
    expect(jobs.map((job) => job.key)).toEqual([keys[0]]);
  });
});

describe('the endpoint limit', () => {
  it(`refuses an endpoint beyond ${endpointsEnabledMax} enabled ones, and re-enabling one beyond it`, async () => {
    const [row] = await service.db.sql<{ count: number }[]>`
      select count(*)::int as count from merchant_webhook_endpoints where enabled`;
    const room = endpointsEnabledMax - (row?.count ?? 0);
    let last = '';
    for (let index = 0; index < room; index += 1) {
      const response = await post('/v1/webhook-endpoints', { ...valid, ownerRef: `filler-${index}` });
      expect(response.statusCode).toBe(201);
      last = response.json().id;
    }
    const over = await post('/v1/webhook-endpoints', valid);
    expect([over.statusCode, over.json().type]).toEqual([409, 'merchant-webhook/too-many-endpoints']);
    await post(`/v1/webhook-endpoints/${last}/disable`, { reason: 'make room' });
    expect((await post('/v1/webhook-endpoints', valid)).statusCode).toBe(201);
    const reenable = await post(`/v1/webhook-endpoints/${last}/enable`, { reason: 'over the limit' });
    expect([reenable.statusCode, reenable.json().type]).toEqual([409, 'merchant-webhook/too-many-endpoints']);
  });
});
