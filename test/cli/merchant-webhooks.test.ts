import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creditDeposit } from '../../src/deposits/credit.ts';
import { deliverOnce } from '../../src/webhooks/delivery.ts';
import { deliveryDeps } from '../../src/webhooks/tasks.ts';
import {
  depositInput,
  loopbackReceiverEnv,
  type MerchantServer,
  merchantAccount,
  startMerchantServer,
} from '../../src/webhooks/test-support.ts';
import { runCli } from '../support/process.ts';
import { startTestService, type TestService, testEnv } from '../support/service.ts';

const settings = { ...loopbackReceiverEnv, MERCHANT_WEBHOOK_ATTEMPTS_MAX: '1' };
let service: TestService;
let server: MerchantServer;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTestService({ env: settings });
  env = await testEnv(service.db, settings);
  server = await startMerchantServer(() => ({ status: 503 }));
});

afterAll(async () => {
  await server.close();
  await service.close();
});

describe('settledesk merchant-webhooks', () => {
  it('registers an endpoint whose printed secret verifies deliveries, lists, dead-letters, replays and disables', async () => {
    const refused = await runCli(
      ['merchant-webhooks', 'endpoints', 'add', '--url', server.url, '--events', 'deposit.credited'],
      env,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('--owner-ref');

    const added = await runCli(
      [
        '--json',
        'merchant-webhooks',
        'endpoints',
        'add',
        '--url',
        server.url,
        '--events',
        'deposit.credited,payout.failed',
        '--owner-ref',
        'cli-shop',
        '--as',
        'ada',
      ],
      env,
    );
    expect(added.code, added.stderr).toBe(0);
    const endpoint = JSON.parse(added.stdout) as { id: string; secret: string; eventTypes: string[] };
    expect(endpoint.eventTypes).toEqual(['deposit.credited', 'payout.failed']);

    const listed = await runCli(['merchant-webhooks', 'endpoints', 'list'], env);
    expect(listed.stdout).toContain(endpoint.id);
    expect(listed.stdout).not.toContain(endpoint.secret);

    // One attempt allowed: the 503 dead-letters the delivery at once.
    const accountId = await merchantAccount(service.db.sql, 'cli-shop');
    await service.db.sql.begin((tx) => creditDeposit(tx, depositInput(accountId, '4')));
    const [delivery] = await service.db.sql<{ id: string }[]>`
      select id from merchant_webhook_deliveries where endpoint_id = ${endpoint.id}::uuid`;
    const deps = deliveryDeps(service.runtime);
    expect(await deliverOnce(deps, delivery?.id ?? '')).toMatchObject({ outcome: 'dead_lettered' });
    const [first] = server.received;
    expect(() => new Webhook(endpoint.secret).verify(first?.body ?? '', first?.headers ?? {})).not.toThrow();

    const dead = await runCli(['merchant-webhooks', 'dlq', 'list'], env);
    expect(dead.code, dead.stderr).toBe(0);
    expect(dead.stdout).toContain(delivery?.id);
    expect(dead.stdout).toContain('HTTP 503');
    const log = await runCli(['--json', 'merchant-webhooks', 'attempts', delivery?.id ?? ''], env);
    expect(JSON.parse(log.stdout).log).toMatchObject([{ attempt: 1, statusCode: 503 }]);

    server.behave(() => ({ status: 200 }));
    const replayed = await runCli(
      ['merchant-webhooks', 'dlq', 'replay', delivery?.id ?? '', '--as', 'otto'],
      env,
    );
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(await deliverOnce(deps, delivery?.id ?? '')).toMatchObject({ outcome: 'delivered' });
    const delivered = await runCli(
      ['--json', 'merchant-webhooks', 'deliveries', '--status', 'delivered'],
      env,
    );
    expect(JSON.parse(delivered.stdout).map((row: { id: string }) => row.id)).toEqual([delivery?.id]);
    const badStatus = await runCli(['merchant-webhooks', 'deliveries', '--status', 'lost'], env);
    expect(badStatus.code).toBe(1);

    const disabled = await runCli(
      ['merchant-webhooks', 'endpoints', 'disable', endpoint.id, '--reason', 'merchant left', '--as', 'ada'],
      env,
    );
    expect(disabled.code, disabled.stderr).toBe(0);
    expect(disabled.stdout).toContain('disabled');
    const audit = await service.db.sql<{ action: string; actor: string }[]>`
      select action, actor from audit_log where action like 'merchant_webhook.%' order by id`;
    expect(audit).toEqual([
      { action: 'merchant_webhook.endpoint_added', actor: 'ada' },
      { action: 'merchant_webhook.dead_lettered', actor: 'merchant-webhooks' },
      { action: 'merchant_webhook.delivery_replayed', actor: 'otto' },
      { action: 'merchant_webhook.endpoint_disabled', actor: 'ada' },
    ]);
  });

  it('rotates an endpoint secret: add-secret prints a new one, retire-secret ends the overlap, and refuses a second retire', async () => {
    const added = await runCli(
      [
        '--json',
        'merchant-webhooks',
        'endpoints',
        'add',
        '--url',
        server.url,
        '--events',
        'deposit.credited',
      ].concat(['--owner-ref', 'cli-rotate', '--as', 'ada']),
      env,
    );
    expect(added.code, added.stderr).toBe(0);
    const endpoint = JSON.parse(added.stdout) as { id: string; secret: string };
    const rotated = await runCli(
      ['merchant-webhooks', 'endpoints', 'add-secret', endpoint.id, '--as', 'ada'],
      env,
    );
    expect(rotated.code, rotated.stderr).toBe(0);
    const secret = /secret (whsec_\S+)/.exec(rotated.stdout)?.[1];
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(endpoint.secret);
    const retired = await runCli(
      ['merchant-webhooks', 'endpoints', 'retire-secret', endpoint.id, '--as', 'ada'],
      env,
    );
    expect(retired.code, retired.stderr).toBe(0);
    expect(retired.stdout).toContain('the previous secret is retired');
    const again = await runCli(
      ['merchant-webhooks', 'endpoints', 'retire-secret', endpoint.id, '--as', 'ada'],
      env,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no previous one to retire');
    const audit = await service.db.sql<{ action: string; actor: string }[]>`
      select action, actor from audit_log where subject_id = ${endpoint.id} order by id`;
    expect(audit.map((row) => row.action)).toEqual([
      'merchant_webhook.endpoint_added',
      'merchant_webhook.secret_added',
      'merchant_webhook.secret_retired',
    ]);
  });
});
