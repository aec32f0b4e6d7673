import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeysUsableMax } from '../../src/access/api-keys.ts';
import { apiKeyPattern } from '../../src/platform/auth/api-keys.ts';
import { accessChannel } from '../../src/platform/auth/keyring-data.ts';
import { issueToken } from '../../src/platform/auth/tokens.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { createLogger } from '../../src/platform/logging.ts';
import { openRuntime, type Runtime } from '../../src/platform/runtime.ts';
import { type Service, startService } from '../../src/server.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { runCli, waitFor } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

const propagationMsMax = 5_000;
let db: TestDatabase;
let env: Record<string, string>;
let adminToken: string;
const instances: { runtime: Runtime; service: Service }[] = [];
/** Every line the first instance logged, at the most verbose level. */
const logLines: string[] = [];

/**
 * Two API instances on one database. The fallback reload is far beyond the 5 s budget, so a pass
 * proves the access sync's LISTEN/NOTIFY carries API key changes, not the periodic reload.
 */
beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db, { ACCESS_RELOAD_MS: '60000' });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  });
  for (let index = 0; index < 2; index += 1) {
    const logger = index === 0 ? createLogger('trace', sink) : createLogger('silent');
    const runtime = await openRuntime(loadConfig(env), logger, {
      migrate: false,
      applicationName: `instance-${index}`,
    });
    instances.push({ runtime, service: await startService(runtime, { worker: false }) });
  }
  const first = instances[0]?.runtime;
  if (!first) throw new Error('no instance');
  adminToken = await issueToken(first.keyring, { subject: 'sec-lead', role: 'admin', ttlSeconds: 600 });
});

afterAll(async () => {
  for (const { runtime, service } of instances) {
    await service.stop();
    await runtime.close();
  }
  await db.drop();
});

function fail(): never {
  throw new Error('no instance');
}

function urlOf(index: number, path: string): string {
  const service = instances[index]?.service;
  if (!service) throw new Error(`no instance ${index}`);
  return `${service.url}${path}`;
}

async function call(index: number, token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(urlOf(index, path), {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The status of a service route (holds are listed to `service` and `viewer`) on each instance. */
async function statuses(token: string, method = 'GET', path = '/v1/escrow/holds?limit=1'): Promise<number[]> {
  return Promise.all(instances.map(async (_, index) => (await call(index, token, method, path)).status));
}

async function within(what: string, check: () => Promise<boolean>): Promise<void> {
  await waitFor(async () => ((await check()) ? true : undefined), propagationMsMax, what);
}

const allAre = (code: number, token: string) => async () =>
  (await statuses(token)).every((status) => status === code);

async function create(body: unknown): Promise<{ id: string; key: string; scope: string }> {
  const created = await call(0, adminToken, 'POST', '/internal/api-keys', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body as { id: string; key: string; scope: string };
}

describe('API keys across instances', () => {
  it('is accepted on both instances, then refused with 401 on both within 5 s of revocation', async () => {
    const created = await create({ name: 'billing-sync', scope: 'service', expiresInDays: 30 });
    expect(created.key).toMatch(apiKeyPattern);
    await within('the new key to be accepted on both instances', allAre(200, created.key));

    const listed = await call(1, adminToken, 'GET', '/internal/api-keys?limit=10');
    const row = (listed.body.items as Record<string, unknown>[]).find((item) => item.id === created.id);
    expect(row?.lastUsedAt).toEqual(expect.any(String));
    expect(row?.revokedAt).toBeNull();
    expect(JSON.stringify(listed.body)).not.toContain(created.key);

    const revoked = await runCli(
      ['--json', 'api-keys', 'revoke', created.id, '--reason', 'pasted in a ticket', '--as', 'sec-lead'],
      env,
    );
    expect(revoked.code, revoked.stderr).toBe(0);
    await within('the revoked key to be refused on both instances', allAre(401, created.key));
    const refused = await call(1, created.key, 'GET', '/v1/escrow/holds?limit=1');
    expect(refused.body.type).toBe('auth/unauthenticated');

    const audit = await db.sql<{ action: string; actor: string }[]>`
      select action, actor from audit_log where subject_type = 'api_key' and subject_id = ${created.id}::text
      order by id`;
    expect(audit).toEqual([
      { action: 'api_keys.created', actor: 'sec-lead' },
      { action: 'api_keys.revoked', actor: 'sec-lead' },
    ]);
  });

  it('refuses an expired key on both instances without waiting for a reload', async () => {
    const created = await create({ name: 'short-lived', scope: 'service' });
    await within('the key to be accepted', allAre(200, created.key));
    // Expiry moved 2 s ahead and announced once: each instance then refuses it on its own clock.
    await db.sql`
      update api_keys set created_at = now() - interval '1 day', expires_at = now() + interval '2 seconds'
      where id = ${created.id}::uuid`;
    await db.sql`select pg_notify(${accessChannel}::text, 'changed')`;
    await within('the expired key to be refused on both instances', allAre(401, created.key));
  });

  it('enforces the scope: a viewer key reads but cannot write, a service key is not an admin', async () => {
    const viewer = await create({ name: 'dashboards', scope: 'viewer' });
    const service = await create({ name: 'merchant-platform', scope: 'service' });
    await within(
      'both keys to be accepted',
      async () => (await allAre(200, viewer.key)()) && (await allAre(200, service.key)()),
    );
    expect(await statuses(viewer.key, 'POST', '/v1/escrow/holds')).toEqual([403, 403]);
    expect(await statuses(service.key, 'GET', '/internal/api-keys')).toEqual([403, 403]);
    expect(await statuses(viewer.key, 'GET', '/internal/api-keys')).toEqual([403, 403]);
  });

  it('refuses a key with a valid shape whose secret is wrong', async () => {
    const created = await create({ name: 'tampered', scope: 'service' });
    await within('the key to be accepted', allAre(200, created.key));
    const last = created.key.at(-1) === 'A' ? 'B' : 'A';
    expect(await statuses(`${created.key.slice(0, -1)}${last}`)).toEqual([401, 401]);
  });

  it('refuses bad input with a problem and creates nothing', async () => {
    const before = await db.sql<{ count: number }[]>`select count(*)::int as count from api_keys`;
    for (const body of [
      { name: 'x', scope: 'admin' },
      { name: 'Bad Name', scope: 'service' },
      { name: 'x', scope: 'service', expiresInDays: 366 },
      { name: 'x', scope: 'service', secret: 'mine' },
    ]) {
      const refused = await call(0, adminToken, 'POST', '/internal/api-keys', body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
    }
    const cli = await runCli(['api-keys', 'create', 'x', '--scope', 'operator'], env);
    expect(cli.code).toBe(1);
    const after = await db.sql<{ count: number }[]>`select count(*)::int as count from api_keys`;
    expect(after).toEqual(before);
    const missing = await call(0, adminToken, 'POST', `/internal/api-keys/${crypto.randomUUID()}/revoke`, {
      reason: 'no such key',
    });
    expect(missing.body.type).toBe('api-keys/not-found');
  });

  it('stores only a digest and never writes the key to the log or the audit row', async () => {
    const cli = await runCli(
      ['--json', 'api-keys', 'create', 'from-cli', '--scope', 'viewer', '--as', 'sec-lead'],
      env,
    );
    expect(cli.code, cli.stderr).toBe(0);
    const created = JSON.parse(cli.stdout) as { id: string; key: string };
    expect(created.key).toMatch(apiKeyPattern);
    await within('the CLI-created key to be accepted', allAre(200, created.key));
    const secret = created.key.slice(-43);
    const [stored] = await db.sql<{ text: string; digest: string }[]>`
      select row_to_json(k)::text as text, encode(secret_hash, 'hex') as digest from api_keys k
      where id = ${created.id}::uuid`;
    expect(stored?.text).not.toContain(secret);
    expect(stored?.digest).toMatch(/^[0-9a-f]{64}$/);
    const audit = await db.sql<{ text: string; action: string }[]>`
      select row_to_json(a)::text as text, action from audit_log a where subject_id = ${created.id}::text`;
    expect(audit.map((row) => row.action)).toEqual(['api_keys.created']);
    for (const row of audit) expect(row.text).not.toContain(secret);
    instances[0]?.runtime.logger.info({ forwarded: created.key }, `a client sent ${created.key}`);
    const logged = logLines.join('');
    expect(logged).toContain('a client sent [REDACTED]');
    expect(logged).not.toContain(secret);
  });

  it("revokes a leaked key with the leaked-secret runbook's cells, refused on both instances", async () => {
    const created = await create({ name: 'leaky', scope: 'service' });
    const bystander = await create({ name: 'careful', scope: 'service' });
    await within('the key to be accepted', allAre(200, created.key));
    const run = await runCli(
      [
        'runbook',
        'run',
        'leaked-secret',
        '--cell',
        'find-leaked-api-key',
        '--cell',
        'revoke-leaked-api-key',
        '--yes',
      ],
      { ...env, LEAKED_API_KEY: created.key, SETTLEDESK_OPERATOR: 'sec-lead' },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('"name": "leaky"');
    expect(run.stdout).not.toContain(created.key.slice(-43));
    await within('the leaked key to be refused on both instances', allAre(401, created.key));
    expect(await statuses(bystander.key)).toEqual([200, 200]);
  });

  it("revokes the keys a compromised admin created with that runbook's cell, and no other key", async () => {
    const rogue = await issueToken(instances[0]?.runtime.keyring ?? fail(), {
      subject: 'rogue-admin',
      role: 'admin',
      ttlSeconds: 600,
    });
    const minted = await call(0, rogue, 'POST', '/internal/api-keys', { name: 'backdoor', scope: 'service' });
    expect(minted.status).toBe(201);
    const key = String(minted.body.key);
    const kept = await create({ name: 'payments-api', scope: 'service' });
    await within(
      'both keys to be accepted',
      async () => (await allAre(200, key)()) && (await allAre(200, kept.key)()),
    );
    const run = await runCli(
      ['runbook', 'run', 'compromised-admin', '--cell', 'revoke-admin-api-keys', '--yes'],
      { ...env, ADMIN_SUBJECT: 'rogue-admin', SETTLEDESK_OPERATOR: 'sec-lead' },
    );
    expect(run.code, run.stderr).toBe(0);
    await within("the rogue admin's key to be refused on both instances", allAre(401, key));
    expect(await statuses(kept.key)).toEqual([200, 200]);
  });

  it('refuses a key beyond apiKeysUsableMax usable ones, and counts revoked ones out', async () => {
    const [usable] = await db.sql<{ count: number }[]>`
      select count(*)::int as count from api_keys where revoked_at is null and expires_at > now()`;
    const filler = apiKeysUsableMax - (usable?.count ?? 0);
    await db.sql`
      insert into api_keys (id, name, scope, secret_hash, created_by, expires_at)
      select gen_random_uuid(), 'filler', 'viewer', sha256(i::text::bytea), 'test', now() + interval '1 day'
      from generate_series(1, ${filler}::int) as i`;
    const refused = await call(0, adminToken, 'POST', '/internal/api-keys', {
      name: 'one-more',
      scope: 'service',
    });
    expect(refused.status).toBe(409);
    expect(refused.body.type).toBe('api-keys/too-many');
    await db.sql`
      update api_keys set revoked_at = now(), revoked_by = 'test', revoked_reason = 'make room'
      where id = (select id from api_keys where name = 'filler' limit 1)`;
    await create({ name: 'one-more', scope: 'service' });
    await db.sql`delete from api_keys where name = 'filler'`;
  });
});
