import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueReference } from '../../test/support/intents.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { startAccessSync } from '../platform/auth/access.ts';
import { DomainError } from '../platform/errors.ts';
import {
  addProviderSecret,
  listProviderSecrets,
  promoteProviderSecret,
  providerSecretsActiveMax,
  retireProviderSecret,
} from './provider-secrets.ts';
import { signatureHeaderValue } from './signature.ts';

/**
 * Provider webhook secrets in the database: refusals, audit, precedence over config. The rotation
 * across two instances through the CLI is test/access/provider-secret-rotation.test.ts.
 */

const rampcoConfigured = 'rampco-configured-secret-0001';
const paycoConfigured = 'payco-configured-secret-0001';
/** The bound the issue sets on a change reaching every instance. */
const propagationMsMax = 5_000;
const pollMs = 50;
const admin = { name: 'admin-ana' };

let service: TestService;
let stopSync: () => Promise<void>;
let account: string;

beforeAll(async () => {
  service = await startTestService({
    env: { DEPOSIT_WEBHOOK_SECRET_RAMPCO: rampcoConfigured, DEPOSIT_WEBHOOK_SECRET_PAYCO: paycoConfigured },
  });
  const { db, runtime } = service;
  await db.sql`insert into deposit_providers (name, kind) values ('rampco', 'external'), ('payco', 'external')`;
  const [row] = await db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  account = row?.id ?? '';
  stopSync = await startAccessSync(runtime.sql, runtime, runtime.config.accessReloadMs, runtime.logger);
});

afterAll(async () => {
  await stopSync?.();
  await service?.close();
});

async function send(secret: string, provider: string): Promise<number> {
  // An issued reference: the deposit is credited (201), so the status says only whether the
  // signature was accepted.
  const reference = randomUUID();
  await issueReference(service.db.sql, { provider, reference, accountId: account });
  const body = JSON.stringify({ reference, accountId: account, asset: 'XLM', amount: '1' });
  const response = await service.app.inject({
    method: 'POST',
    url: `/v1/webhooks/deposits/${provider}`,
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-webhook-signature': signatureHeaderValue(secret, Math.floor(Date.now() / 1_000), body),
    },
  });
  return response.statusCode;
}

/** Sends until the instance answers `status`, failing once the propagation bound has passed. */
async function untilAnswered(secret: string, provider: string, status: number): Promise<void> {
  const deadline = Date.now() + propagationMsMax;
  let last = await send(secret, provider);
  while (last !== status && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    last = await send(secret, provider);
  }
  expect(last).toBe(status);
}

async function problemType(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(DomainError);
  return (error as DomainError).type;
}

describe('provider webhook secrets', () => {
  it('imports the configured secret on the first add, audits every change and never stores or logs a secret in clear', async () => {
    const { sql, keyring } = service.runtime;
    expect(await send(rampcoConfigured, 'rampco')).toBe(201);
    const added = await addProviderSecret(sql, keyring, {
      provider: 'rampco',
      configured: [rampcoConfigured],
      actor: admin,
    });
    const [importedId] = added.imported;
    expect(added.imported).toHaveLength(1);
    expect(added.state).toBe('verify_only');
    await promoteProviderSecret(sql, added.id, admin);
    await retireProviderSecret(sql, importedId ?? '', admin);
    await untilAnswered(rampcoConfigured, 'rampco', 401);
    expect(await send(added.secret, 'rampco')).toBe(201);

    const rows = await service.db.sql<{ action: string; subjectId: string }[]>`
      select action, subject_id as "subjectId" from audit_log
      where subject_type = 'provider_webhook_secret' order by id`;
    expect(rows).toEqual([
      { action: 'provider.secret.imported', subjectId: importedId },
      { action: 'provider.secret.added', subjectId: added.id },
      { action: 'provider.secret.promoted', subjectId: added.id },
      { action: 'provider.secret.retired', subjectId: importedId },
    ]);
    const stored = await service.db.sql<{ text: string }[]>`
      select (select string_agg(a::text, ' ') from audit_log a) || ' ' ||
        (select string_agg(encode(secret_sealed, 'escape'), ' ') from provider_webhook_secrets) as text`;
    expect(stored[0]?.text).not.toContain(rampcoConfigured);
    expect(stored[0]?.text).not.toContain(added.secret);
  });

  it('refuses a third accepted secret, retiring the current one, promoting a retired one and an unknown id', async () => {
    const { sql, keyring } = service.runtime;
    const one = await addProviderSecret(sql, keyring, { provider: 'payco', configured: [], actor: admin });
    expect(one.state).toBe('current');
    expect(one.imported).toEqual([]);
    const two = await addProviderSecret(sql, keyring, { provider: 'payco', configured: [], actor: admin });
    expect(providerSecretsActiveMax).toBe(2);
    expect(
      await problemType(addProviderSecret(sql, keyring, { provider: 'payco', configured: [], actor: admin })),
    ).toBe('providers/secret-limit');
    expect(await problemType(retireProviderSecret(sql, one.id, admin))).toBe('providers/secret-current');
    await retireProviderSecret(sql, two.id, admin);
    expect(await problemType(promoteProviderSecret(sql, two.id, admin))).toBe('providers/secret-retired');
    expect(await problemType(retireProviderSecret(sql, 'ps_0000000000000000', admin))).toBe(
      'providers/secret-not-found',
    );
    expect(
      await problemType(
        addProviderSecret(sql, keyring, { provider: 'nosuch', configured: [], actor: admin }),
      ),
    ).toBe('webhook/unknown-provider');
    expect((await listProviderSecrets(sql, 'payco')).map((row) => row.state)).toEqual(['current', 'retired']);

    // Added without importing its configured secret (a CLI run without DEPOSIT_WEBHOOK_SECRET_PAYCO):
    // once a provider has secrets in the database, its configured one is ignored.
    await untilAnswered(one.secret, 'payco', 201);
    expect(await send(paycoConfigured, 'payco')).toBe(401);
  });
});
