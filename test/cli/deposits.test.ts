import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeaderValue } from '../../src/deposits/signature.ts';
import { issueReference } from '../support/intents.ts';
import { runCli } from '../support/process.ts';
import { startTestService, type TestService, testEnv } from '../support/service.ts';

const secret = 'cli-provider-secret-0001';
let service: TestService;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTestService({ env: { DEPOSIT_WEBHOOK_SECRET_CLIRAMP: secret } });
  env = await testEnv(service.db, { DEPOSIT_WEBHOOK_SECRET_CLIRAMP: secret });
});

afterAll(async () => {
  await service.close();
});

async function webhook(body: string) {
  const timestamp = Math.floor(Date.now() / 1_000);
  return service.app.inject({
    method: 'POST',
    url: '/v1/webhooks/deposits/cliramp',
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-webhook-signature': signatureHeaderValue(secret, timestamp, body),
    },
  });
}

describe('settledesk providers and webhooks dlq', () => {
  it('adds a provider, changes its mode with an audit entry, and keeps a dead letter that still fails queued', async () => {
    const added = await runCli(['--json', 'providers', 'add', 'cliramp', '--as', 'ada'], env);
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toEqual({ name: 'cliramp', kind: 'external', mode: 'standard' });

    const disabled = await runCli(
      ['providers', 'mode', 'cliramp', 'disabled', '--reason', 'drill', '--as', 'ada'],
      env,
    );
    expect(disabled.code, disabled.stderr).toBe(0);
    const [closed] = await service.db.sql<{ id: string }[]>`
      insert into accounts (type, asset, status) values ('customer', 'XLM', 'closed') returning id`;
    const accountId = closed?.id ?? '';
    await issueReference(service.db.sql, { provider: 'cliramp', reference: 'cli-1', accountId });
    const body = JSON.stringify({ reference: 'cli-1', accountId, asset: 'XLM', amount: '1' });
    expect((await webhook(body)).statusCode).toBe(403);
    await runCli(['providers', 'mode', 'cliramp', 'standard', '--reason', 'drill over', '--as', 'ada'], env);
    const audit = await service.db.sql`select 1 from audit_log where action = 'provider.mode'`;
    expect(audit).toHaveLength(2);

    // The intent's account is closed: the webhook verifies, is refused and dead-lettered.
    const parked = await webhook(body);
    expect(parked.statusCode).toBe(422);
    expect(parked.json()).toMatchObject({ type: 'ledger/account-closed' });
    const listed = await runCli(['--json', 'webhooks', 'dlq', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const [entry] = JSON.parse(listed.stdout) as { id: string; error: string }[];
    expect(entry?.id).toBe(parked.json().webhookId);
    expect(entry?.error).toContain(`account ${accountId} is closed`);
    const failing = await runCli(['webhooks', 'dlq', 'replay', entry?.id ?? ''], env);
    expect(failing.code).toBe(1);
    expect(failing.stderr).toContain('ledger/account-closed');

    const bad = await runCli(['providers', 'mode', 'cliramp', 'sideways', '--reason', 'x'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('mode must be one of standard, read_only, disabled');
  });
});
