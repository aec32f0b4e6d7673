import { randomUUID } from 'node:crypto';
import { StrKey } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../test/support/process.ts';
import { startTestService, type TestService, testEnv } from '../../test/support/service.ts';
import { signatureHeaderValue } from './signature.ts';

const secret = 'newramp-secret-000000001';
let service: TestService;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTestService({ env: { DEPOSIT_WEBHOOK_SECRET_NEWRAMP: secret } });
  env = await testEnv(service.db, { DEPOSIT_WEBHOOK_SECRET_NEWRAMP: secret });
  await service.db.sql`insert into deposit_providers (name, kind) values ('newramp', 'external')`;
});

afterAll(async () => {
  await service.close();
});

async function intent(accountId: string, provider?: string) {
  const response = await service.app.inject({
    method: 'POST',
    url: '/v1/deposits/intents',
    payload: { accountId, ...(provider ? { provider } : {}) },
    headers: { authorization: `Bearer ${await service.token('service')}`, 'idempotency-key': randomUUID() },
  });
  return { statusCode: response.statusCode, body: response.json() };
}

async function customers(count: number): Promise<string[]> {
  const rows = await service.db.sql<{ id: string }[]>`
    insert into accounts (type, asset) select 'customer', 'XLM' from generate_series(1, ${count}::int) returning id`;
  return rows.map((row) => row.id);
}

describe('deposit intents and provider routing', () => {
  it('gives the Stellar provider an address with the account memo and the matching muxed address', async () => {
    const [account = ''] = await customers(1);
    const first = await intent(account);
    expect(first.statusCode).toBe(201);
    expect(first.body.provider).toBe('stellar');
    expect(StrKey.isValidEd25519PublicKey(first.body.stellar.address)).toBe(true);
    expect(StrKey.isValidMed25519PublicKey(first.body.stellar.muxedAddress)).toBe(true);
    expect((await intent(account)).body.stellar.memo).toEqual(first.body.stellar.memo);
  });

  it('routes about the cohort share of 1,000 intents to the second provider, and rolls back in one command', async () => {
    const routed = await runCli(
      [
        'providers',
        'route',
        '--default',
        'stellar',
        '--cohort',
        'newramp',
        '--percent',
        '10',
        '--reason',
        'rollout',
        '--as',
        'ada',
      ],
      env,
    );
    expect(routed.code, routed.stderr).toBe(0);
    const accounts = await customers(1_000);
    const providers: string[] = [];
    for (const account of accounts) providers.push((await intent(account)).body.provider);
    const toNewramp = providers.filter((provider) => provider === 'newramp').length;
    expect(toNewramp).toBeGreaterThan(60);
    expect(toNewramp).toBeLessThan(140);
    // The same account always lands on the same provider.
    const sample = accounts.slice(0, 20);
    for (const [index, account] of sample.entries())
      expect((await intent(account)).body.provider).toBe(providers[index]);

    const rolledBack = await runCli(
      ['--json', 'providers', 'rollback', '--reason', 'newramp errors', '--as', 'ada'],
      env,
    );
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    expect(JSON.parse(rolledBack.stdout)).toEqual({
      defaultProvider: 'stellar',
      cohortProvider: null,
      cohortPercent: 0,
    });
    for (const account of accounts.slice(0, 50))
      expect((await intent(account)).body.provider).toBe('stellar');
    const audit = await service.db.sql`select 1 from audit_log where action = 'deposits.routing'`;
    expect(audit).toHaveLength(2);
  });

  it('refuses new intents for a read_only provider but still processes its webhooks', async () => {
    const [account = ''] = await customers(1);
    const external = await intent(account, 'newramp');
    expect(external.statusCode).toBe(201);
    expect(external.body.reference).toMatch(/^newramp-/);
    const mode = await runCli(
      ['providers', 'mode', 'newramp', 'read_only', '--reason', 'migrating away', '--as', 'ada'],
      env,
    );
    expect(mode.code, mode.stderr).toBe(0);
    const refused = await intent(account, 'newramp');
    expect(refused.statusCode).toBe(409);
    expect(refused.body.type).toContain('deposits/provider-not-accepting');
    const body = JSON.stringify({
      reference: external.body.reference,
      accountId: account,
      asset: 'XLM',
      amount: '4',
    });
    const timestamp = Math.floor(Date.now() / 1_000);
    const webhook = await service.app.inject({
      method: 'POST',
      url: '/v1/webhooks/deposits/newramp',
      payload: body,
      headers: {
        'content-type': 'application/json',
        'x-webhook-signature': signatureHeaderValue(secret, timestamp, body),
      },
    });
    expect(webhook.statusCode).toBe(201);
  });
});
