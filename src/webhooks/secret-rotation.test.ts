import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { creditDeposit } from '../deposits/credit.ts';
import { deliverOnce } from './delivery.ts';
import { deliveryDeps } from './tasks.ts';
import {
  depositInput,
  loopbackReceiverEnv,
  type MerchantServer,
  merchantAccount,
  registerEndpoint,
  startMerchantServer,
} from './test-support.ts';

/** Endpoint secrets rotate with an overlap: both sign until the previous one is retired. */

let service: TestService;
let receiver: MerchantServer;

beforeAll(async () => {
  service = await startTestService({ env: loopbackReceiverEnv });
  receiver = await startMerchantServer(() => ({ status: 204 }));
});

afterAll(async () => {
  await receiver.close();
  await service.close();
});

async function post(url: string, role: 'admin' | 'operator' = 'admin') {
  return service.app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${await service.token(role, `${role}-user`)}` },
  });
}

/** Emits one deposit.credited event for the owner, delivers it now, and returns the request received. */
async function deliverOne(accountId: string, endpointId: string) {
  const sent = receiver.received.length;
  await service.db.sql.begin((tx) => creditDeposit(tx, depositInput(accountId, '1')));
  const [delivery] = await service.db.sql<{ id: string }[]>`
    select id from merchant_webhook_deliveries where endpoint_id = ${endpointId}::uuid and status = 'pending'`;
  const run = await deliverOnce(deliveryDeps(service.runtime), delivery?.id ?? '');
  expect(run).toMatchObject({ outcome: 'delivered' });
  expect(receiver.received).toHaveLength(sent + 1);
  const request = receiver.received.at(-1);
  if (!request) throw new Error('nothing received');
  return request;
}

const verifies = (secret: string, request: { body: string; headers: Record<string, string> }) => {
  try {
    new Webhook(secret).verify(request.body, request.headers);
    return true;
  } catch {
    return false;
  }
};

describe('rotating an endpoint secret', () => {
  it('signs with both secrets during the overlap and with the new one only once the old is retired', async () => {
    const accountId = await merchantAccount(service.db.sql, 'rotating-co');
    const endpoint = await registerEndpoint(service, {
      url: receiver.url,
      eventTypes: ['deposit.credited'],
      ownerRef: 'rotating-co',
    });
    const before = await deliverOne(accountId, endpoint.id);
    expect(before.headers['webhook-signature']?.split(' ')).toHaveLength(1);
    expect(verifies(endpoint.secret, before)).toBe(true);

    const added = await post(`/v1/webhook-endpoints/${endpoint.id}/secrets`);
    expect(added.statusCode, added.body).toBe(201);
    const { secret: newSecret, rotationStartedAt } = added.json();
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(endpoint.secret);
    expect(typeof rotationStartedAt).toBe('string');

    const overlap = await deliverOne(accountId, endpoint.id);
    expect(overlap.headers['webhook-signature']?.split(' ')).toHaveLength(2);
    expect(verifies(endpoint.secret, overlap)).toBe(true);
    expect(verifies(newSecret, overlap)).toBe(true);

    const again = await post(`/v1/webhook-endpoints/${endpoint.id}/secrets`);
    expect([again.statusCode, again.json().type]).toEqual([409, 'merchant-webhook/rotation-in-progress']);

    const retired = await post(`/v1/webhook-endpoints/${endpoint.id}/secrets/retire-previous`);
    expect(retired.statusCode, retired.body).toBe(200);
    expect(retired.json().rotationStartedAt).toBeNull();
    expect(retired.json().secret).toBeUndefined();

    const after = await deliverOne(accountId, endpoint.id);
    expect(after.headers['webhook-signature']?.split(' ')).toHaveLength(1);
    expect(verifies(newSecret, after)).toBe(true);
    expect(verifies(endpoint.secret, after)).toBe(false);

    const twice = await post(`/v1/webhook-endpoints/${endpoint.id}/secrets/retire-previous`);
    expect([twice.statusCode, twice.json().type]).toEqual([409, 'merchant-webhook/no-previous-secret']);
    const audit = await service.db.sql<{ action: string }[]>`
      select action from audit_log where subject_id = ${endpoint.id} and action like 'merchant_webhook.secret_%'
      order by id`;
    expect(audit.map((row) => row.action)).toEqual([
      'merchant_webhook.secret_added',
      'merchant_webhook.secret_retired',
    ]);
  });

  it('is for admins only, and names an unknown endpoint', async () => {
    const endpoint = await registerEndpoint(service, {
      url: receiver.url,
      eventTypes: ['deposit.credited'],
      ownerRef: 'guarded-co',
    });
    expect((await post(`/v1/webhook-endpoints/${endpoint.id}/secrets`, 'operator')).statusCode).toBe(403);
    expect(
      (await post(`/v1/webhook-endpoints/${endpoint.id}/secrets/retire-previous`, 'operator')).statusCode,
    ).toBe(403);
    const unknown = await post(`/v1/webhook-endpoints/${crypto.randomUUID()}/secrets`);
    expect([unknown.statusCode, unknown.json().type]).toEqual([404, 'merchant-webhook/endpoint-not-found']);
    const [row] = await service.db.sql<{ previous: Buffer | null }[]>`
      select previous_secret_sealed as previous from merchant_webhook_endpoints where id = ${endpoint.id}::uuid`;
    expect(row?.previous).toBeNull();
  });
});
