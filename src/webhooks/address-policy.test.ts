import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { creditDeposit } from '../deposits/credit.ts';
import { loadConfig } from '../platform/config.ts';
import {
  allowedEntry,
  EndpointAddressPolicy,
  endpointAddressPolicy,
  type Resolver,
  refusedAddressErrorCode,
} from './address-policy.ts';
import { deliverOnce, postSigned } from './delivery.ts';
import { endpointSecretBox } from './secrets.ts';
import { createEndpoint } from './service.ts';
import { deliveryDeps } from './tasks.ts';
import {
  depositInput,
  type MerchantServer,
  merchantAccount,
  registerEndpoint,
  startMerchantServer,
} from './test-support.ts';

/** Acceptance 4: merchant endpoints cannot be turned against settledesk's own network (SSRF). */

let service: TestService;
let receiver: MerchantServer;

beforeAll(async () => {
  // Plain http is allowed so that the receiver could be reached; the address allow-list is empty.
  service = await startTestService({ env: { MERCHANT_WEBHOOK_ALLOW_HTTP: 'true' } });
  receiver = await startMerchantServer(() => ({ status: 204 }));
});

afterAll(async () => {
  await receiver.close();
  await service.close();
});

const portOf = (url: string) => new URL(url).port;

/** The acceptance's five targets, each on the receiver's port, so a request would reach it if made. */
function forbiddenUrls(port: string): string[] {
  return [
    `http://127.0.0.1:${port}/hooks`,
    `http://10.0.0.1:${port}/hooks`,
    `http://169.254.169.254:${port}/latest/meta-data/`,
    `http://[::1]:${port}/hooks`,
    `http://localhost:${port}/hooks`,
  ];
}

describe('the address policy', () => {
  it('refuses loopback, private, link-local, CGNAT, multicast, unspecified and metadata addresses, and IPv4 behind IPv6 forms', () => {
    const policy = new EndpointAddressPolicy([]);
    const refused = [
      '127.0.0.1',
      '127.255.0.9',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '100.100.100.200',
      '192.0.0.192',
      '224.0.0.1',
      '255.255.255.255',
      '0.0.0.0',
      '::',
      '::1',
      '::ffff:127.0.0.1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::a9fe:a9fe',
      '2002:7f00:1::',
      'fd00:ec2::254',
      'fc00::1',
      'fe80::1',
      'ff02::1',
    ];
    expect(refused.filter((address) => policy.refusal(address) === undefined)).toEqual([]);
    expect(policy.refusal('169.254.169.254')).toContain('metadata');
    expect(policy.refusal('::1')).toBe('loopback');
    for (const address of ['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700:4700::1111']) {
      expect(policy.refusal(address), address).toBeUndefined();
    }
  });

  it('lets the allow-list name addresses, CIDR blocks and host names, and nothing else', () => {
    const policy = new EndpointAddressPolicy(
      ['127.0.0.1', '10.1.0.0/16', '[::1]', 'Hooks.Internal'].map((text) => {
        const entry = allowedEntry(text);
        if (entry === undefined) throw new Error(`not an entry: ${text}`);
        return entry;
      }),
    );
    expect(policy.refusal('127.0.0.1')).toBeUndefined();
    expect(policy.refusal('::ffff:127.0.0.1')).toBeUndefined();
    expect(policy.refusal('::1')).toBeUndefined();
    expect(policy.refusal('10.1.200.3')).toBeUndefined();
    expect(policy.refusal('127.0.0.2')).toBe('loopback');
    expect(policy.refusal('10.2.0.1')).toBe('private (RFC 1918)');
    expect(policy.hostAllowed('hooks.internal')).toBe(true);
    expect(policy.hostAllowed('other.internal')).toBe(false);
  });

  it('is configured by MERCHANT_WEBHOOK_ALLOWED_HOSTS, which refuses what is neither a host nor an address', () => {
    const config = loadConfig({ MERCHANT_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1, 10.0.0.0/8 ,localhost' }, '/srv');
    expect(config.merchantWebhooks.allowedHosts).toEqual([
      { cidr: '127.0.0.1' },
      { cidr: '10.0.0.0/8' },
      { host: 'localhost' },
    ]);
    expect(loadConfig({}, '/srv').merchantWebhooks.allowedHosts).toEqual([]);
    for (const bad of ['10.0.0.0/33', 'http://x', 'a b', '1.2.3.4/x']) {
      expect(() => loadConfig({ MERCHANT_WEBHOOK_ALLOWED_HOSTS: bad }, '/srv'), bad).toThrow(
        /MERCHANT_WEBHOOK_ALLOWED_HOSTS/,
      );
    }
  });
});

describe('registering an endpoint without the allow-list', () => {
  it('refuses 127.0.0.1, 10.0.0.1, 169.254.169.254, [::1] and localhost with a problem, storing nothing', async () => {
    const before = await service.db.sql`select id from merchant_webhook_endpoints`;
    const token = await service.token('admin', 'ada');
    const urls = [...forbiddenUrls('8443'), 'http://2130706433/hooks', 'http://0x7f.1/hooks'];
    for (const url of urls) {
      const response = await service.app.inject({
        method: 'POST',
        url: '/v1/webhook-endpoints',
        payload: { url, eventTypes: ['deposit.credited'], ownerRef: 'ssrf' },
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.statusCode, url).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().type, url).toBe('merchant-webhook/forbidden-address');
    }
    const localhost = await service.app.inject({
      method: 'POST',
      url: '/v1/webhook-endpoints',
      payload: { url: 'http://localhost/hooks', eventTypes: ['deposit.credited'], ownerRef: 'ssrf' },
      headers: { authorization: `Bearer ${token}` },
    });
    expect(localhost.json()).toMatchObject({ host: 'localhost', reason: 'loopback' });
    expect(localhost.json().detail).toContain('MERCHANT_WEBHOOK_ALLOWED_HOSTS');
    expect(await service.db.sql`select id from merchant_webhook_endpoints`).toHaveLength(before.length);
  });

  it('refuses a name whose resolver answers a private address, and accepts it when it answers a public one', async () => {
    const { sql, config } = service.runtime;
    const answers: Record<string, string> = { 'inside.test': '10.0.0.1', 'outside.test': '93.184.216.34' };
    const resolver: Resolver = async (name) => [{ address: answers[name] ?? '', family: 4 }];
    const deps = {
      secrets: endpointSecretBox(config),
      allowHttp: true,
      policy: new EndpointAddressPolicy([], resolver),
    };
    const input = { eventTypes: ['deposit.credited'], ownerRef: 'resolver-co', description: null };
    await expect(
      createEndpoint(sql, deps, { ...input, url: 'https://inside.test/hooks' }, { name: 'ada' }),
    ).rejects.toMatchObject({
      type: 'merchant-webhook/forbidden-address',
      extensions: { address: '10.0.0.1' },
    });
    const created = await createEndpoint(
      sql,
      deps,
      { ...input, url: 'https://outside.test/hooks' },
      { name: 'ada' },
    );
    expect(created.endpoint.url).toBe('https://outside.test/hooks');
  });
});

describe('delivering without the allow-list', () => {
  it('refuses each of the five targets before connecting, even when the receiver listens there', async () => {
    const policy = endpointAddressPolicy(service.runtime.config.merchantWebhooks);
    for (const url of forbiddenUrls(portOf(receiver.url))) {
      const result = await postSigned(url, {}, '{}', 2_000, policy);
      expect(result, url).toMatchObject({ ok: false, statusCode: null });
      expect(result.error, url).toContain(`${refusedAddressErrorCode}: refused`);
    }
    expect(receiver.received).toHaveLength(0);
    // The control: the same receiver, allowed, is reached through the same code path.
    const allowed = new EndpointAddressPolicy([{ cidr: '127.0.0.1' }]);
    const reached = await postSigned(
      `http://localhost:${portOf(receiver.url)}/hooks`,
      {},
      '{}',
      2_000,
      allowed,
    );
    expect(reached).toMatchObject({ ok: true, statusCode: 204 });
    expect(receiver.received).toHaveLength(1);
  });

  it('refuses a delivery to an endpoint registered while allowed, once the allow-list no longer names it', async () => {
    const sent = receiver.received.length;
    const accountId = await merchantAccount(service.db.sql, 'was-allowed');
    // Registered by an instance whose allow-list named 127.0.0.1 …
    const allowing = await startTestService({
      db: service.db,
      env: { MERCHANT_WEBHOOK_ALLOW_HTTP: 'true', MERCHANT_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' },
    });
    try {
      await registerEndpoint(allowing, {
        url: receiver.url,
        eventTypes: ['deposit.credited'],
        ownerRef: 'was-allowed',
      });
    } finally {
      await allowing.close();
    }
    await service.db.sql.begin((tx) => creditDeposit(tx, depositInput(accountId, '1')));
    const [delivery] = await service.db.sql<{ id: string }[]>`
      select d.id from merchant_webhook_deliveries d join merchant_webhook_endpoints e on e.id = d.endpoint_id
      where e.owner_ref = 'was-allowed'`;
    // … and delivered by one whose allow-list is empty.
    const run = await deliverOnce(deliveryDeps(service.runtime), delivery?.id ?? '');
    expect(run).toMatchObject({ outcome: 'failed_attempt', result: { statusCode: null } });
    const [attempt] = await service.db.sql<{ error: string }[]>`
      select error from merchant_webhook_attempts where delivery_id = ${delivery?.id ?? ''}::uuid`;
    expect(attempt?.error).toContain('127.0.0.1 is loopback');
    expect(receiver.received).toHaveLength(sent);
  });

  it('refuses a name that resolved to a public address at registration and to loopback at delivery (DNS rebinding)', async () => {
    const { sql, config } = service.runtime;
    const sent = receiver.received.length;
    let answer = '93.184.216.34';
    const rebinding = new EndpointAddressPolicy([], async () => [{ address: answer, family: 4 }]);
    const accountId = await merchantAccount(sql, 'rebinder');
    await createEndpoint(
      sql,
      { secrets: endpointSecretBox(config), allowHttp: true, policy: rebinding },
      {
        url: `http://rebind.test:${portOf(receiver.url)}/hooks`,
        eventTypes: ['deposit.credited'],
        ownerRef: 'rebinder',
        description: null,
      },
      { name: 'ada' },
    );
    answer = '127.0.0.1';
    await sql.begin((tx) => creditDeposit(tx, depositInput(accountId, '1')));
    const [delivery] = await sql<{ id: string }[]>`
      select d.id from merchant_webhook_deliveries d join merchant_webhook_endpoints e on e.id = d.endpoint_id
      where e.owner_ref = 'rebinder'`;
    const deps = { ...deliveryDeps(service.runtime), policy: rebinding };
    const run = await deliverOnce(deps, delivery?.id ?? '');
    expect(run).toMatchObject({ outcome: 'failed_attempt' });
    const [attempt] = await sql<{ error: string }[]>`
      select error from merchant_webhook_attempts where delivery_id = ${delivery?.id ?? ''}::uuid`;
    expect(attempt?.error).toContain('rebind.test resolves to 127.0.0.1, loopback');
    expect(receiver.received).toHaveLength(sent);
    // The connection goes to the address the policy resolved: allowed, the same name reaches the
    // receiver, which the system resolver could not have found.
    const allowed = new EndpointAddressPolicy([{ cidr: '127.0.0.1' }], async () => [
      { address: answer, family: 4 },
    ]);
    const result = await postSigned(
      `http://rebind.test:${portOf(receiver.url)}/hooks`,
      {},
      '{}',
      2_000,
      allowed,
    );
    expect(result).toMatchObject({ ok: true, statusCode: 204 });
  });
});
