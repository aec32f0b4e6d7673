import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { testEnv, testKeyringKey } from '../../test/support/service.ts';
import { addProviderSecret } from '../deposits/provider-secrets.ts';
import { signatureHeaderValue, verifySignature } from '../deposits/signature.ts';
import { keyVersion } from '../platform/auth/keyring.ts';
import { loadConfig } from '../platform/config.ts';
import { OperatingError } from '../platform/errors.ts';
import { createLogger } from '../platform/logging.ts';
import { openRuntime, type Runtime } from '../platform/runtime.ts';
import { reencryptKeyring } from './reencrypt.ts';

/** Keyring key rotation: a new key, the old one kept for opening, the job re-seals, the old one goes. */

const newKey = randomBytes(32).toString('base64');
let db: TestDatabase;
const opened: Runtime[] = [];

async function open(keys: { key: string; previous?: string }): Promise<Runtime> {
  const env = await testEnv(db, {
    SETTLEDESK_KEYRING_KEY: keys.key,
    ...(keys.previous === undefined ? {} : { SETTLEDESK_KEYRING_PREVIOUS_KEYS: keys.previous }),
  });
  const runtime = await openRuntime(loadConfig(env), createLogger('silent'), {
    migrate: false,
    applicationName: 'reencrypt-test',
  });
  opened.push(runtime);
  return runtime;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`insert into deposit_providers (name, kind) values ('rampco', 'external')`;
});

afterAll(async () => {
  for (const runtime of opened) await runtime.close();
  await db.drop();
});

describe('keyring key rotation', () => {
  it('re-seals every signing key and provider secret under the new key, after which the old key is not needed', async () => {
    const before = await open({ key: testKeyringKey });
    const added = await addProviderSecret(before.sql, before.keyring, {
      provider: 'rampco',
      configured: [],
      actor: { name: 'sec-lead' },
    });
    // Sealed before key versions existed: opened by trying each configured key.
    await db.sql`update signing_keys set key_version = null`;
    const kid = before.keyring.signingKey().kid;

    // The new key alone cannot open what the old one sealed: the job is what lets it go.
    await expect(open({ key: newKey })).rejects.toBeInstanceOf(OperatingError);

    const rotating = await open({ key: newKey, previous: testKeyringKey });
    expect(rotating.keyring.signingKey().kid).toBe(kid);
    const result = await reencryptKeyring(rotating.sql, rotating.keyring);
    expect(result).toEqual({ signingKeys: 1, providerSecrets: 1 });
    const versions = await db.sql<{ version: string | null }[]>`
      select key_version as version from signing_keys
      union all select key_version from provider_webhook_secrets`;
    expect(versions.map((row) => row.version)).toEqual([
      keyVersion(Buffer.from(newKey, 'base64')),
      keyVersion(Buffer.from(newKey, 'base64')),
    ]);
    const [audit] = await db.sql<{ subjectId: string; after: unknown }[]>`
      select subject_id as "subjectId", after from audit_log where action = 'keyring.reencrypted'`;
    expect(audit).toEqual({
      subjectId: rotating.keyring.currentKeyVersion,
      after: {
        signingKeys: 1,
        providerSecrets: 1,
        from: [before.keyring.currentKeyVersion, 'unversioned'].sort(),
      },
    });
    expect(await reencryptKeyring(rotating.sql, rotating.keyring)).toEqual({
      signingKeys: 0,
      providerSecrets: 0,
    });

    const after = await open({ key: newKey });
    expect(after.keyring.signingKey().kid).toBe(kid);
    const body = '{}';
    const now = Math.floor(Date.now() / 1_000);
    expect(
      verifySignature({
        header: signatureHeaderValue(added.secret, now, body),
        body,
        secrets: after.providerSecrets.secretsFor('rampco', []),
        nowSeconds: now,
        toleranceSeconds: 300,
      }),
    ).toEqual({ ok: true });
  });

  it('refuses a malformed previous-keys setting without echoing it', () => {
    expect(() => loadConfig({ SETTLEDESK_KEYRING_PREVIOUS_KEYS: 'not-a-key' })).toThrow(
      /SETTLEDESK_KEYRING_PREVIOUS_KEYS: must be up to 3 comma-separated 32-byte keys in base64/,
    );
  });
});
