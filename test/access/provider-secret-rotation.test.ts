import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeaderValue } from '../../src/deposits/signature.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { type Instance, startInstances, stopInstances } from '../support/instances.ts';
import { issueReference } from '../support/intents.ts';
import { runCli, waitFor } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

/**
 * Issue 19, acceptance 2: a provider webhook secret is added, promoted and the old one retired
 * with two API instances running on one database, through the CLI, without a restart. The
 * fallback reload is set far beyond the 5 s budget, so a pass proves the NOTIFY path carries it.
 */

const propagationMsMax = 5_000;
const configuredSecret = 'rampco-configured-secret-0001';
let db: TestDatabase;
let env: Record<string, string>;
let account: string;
const instances: Instance[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`insert into deposit_providers (name, kind) values ('rampco', 'external')`;
  const [row] = await db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  account = row?.id ?? '';
  env = await testEnv(db, { ACCESS_RELOAD_MS: '60000', DEPOSIT_WEBHOOK_SECRET_RAMPCO: configuredSecret });
  instances.push(...(await startInstances(env, 2)));
});

afterAll(async () => {
  await stopInstances(instances);
  await db.drop();
});

/** The status each instance answers a fresh deposit webhook signed with `secret`. */
async function statuses(secret: string): Promise<number[]> {
  return Promise.all(
    instances.map(async ({ service }) => {
      // An issued reference: the deposit is credited (201), so the status says only whether the
      // signature was accepted.
      const reference = randomUUID();
      await issueReference(db.sql, { provider: 'rampco', reference, accountId: account });
      const body = JSON.stringify({ reference, accountId: account, asset: 'XLM', amount: '1' });
      const response = await fetch(`${service.url}/v1/webhooks/deposits/rampco`, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'x-webhook-signature': signatureHeaderValue(secret, Math.floor(Date.now() / 1_000), body),
        },
      });
      return response.status;
    }),
  );
}

async function cli(args: string[]): Promise<string> {
  const result = await runCli(['--json', ...args], env);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

async function within(what: string, secret: string, status: number): Promise<void> {
  await waitFor(
    async () => ((await statuses(secret)).every((answered) => answered === status) ? true : undefined),
    propagationMsMax,
    what,
  );
}

describe('provider webhook secret rotation across instances, without restarts', () => {
  it('accepts both secrets during the overlap and refuses the retired one on both instances within 5 s', async () => {
    expect(await statuses(configuredSecret)).toEqual([201, 201]);

    const added = JSON.parse(await cli(['providers', 'secret', 'add', 'rampco', '--as', 'sec-lead'])) as {
      id: string;
      state: string;
      secret: string;
      imported: string[];
    };
    expect(added.state).toBe('verify_only');
    expect(added.imported).toHaveLength(1);
    const oldId = added.imported[0] ?? '';
    await within('the new secret to be accepted on both instances', added.secret, 201);
    expect(await statuses(configuredSecret)).toEqual([201, 201]);

    await cli(['providers', 'secret', 'promote', added.id, '--as', 'sec-lead']);
    const listed = JSON.parse(await cli(['providers', 'secret', 'list', 'rampco'])) as {
      id: string;
      state: string;
    }[];
    expect(listed.map((row) => [row.id, row.state])).toEqual([
      [oldId, 'verify_only'],
      [added.id, 'current'],
    ]);
    expect(await statuses(configuredSecret)).toEqual([201, 201]);
    expect(await statuses(added.secret)).toEqual([201, 201]);

    const refused = await runCli(['providers', 'secret', 'retire', added.id], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('providers/secret-current');

    await cli(['providers', 'secret', 'retire', oldId, '--as', 'sec-lead']);
    await within('the retired secret to be refused on both instances', configuredSecret, 401);
    expect(await statuses(added.secret)).toEqual([201, 201]);
  });
});

describe('settledesk keyring', () => {
  it('reports every sealed secret under the current key version after a reencrypt', async () => {
    // Signing keys sealed before key versions existed count as under another key until re-sealed.
    await db.sql`update signing_keys set key_version = null`;
    const before = JSON.parse(await cli(['keyring', 'status'])) as { sealedUnderOtherKeys: number };
    expect(before.sealedUnderOtherKeys).toBeGreaterThan(0);
    const result = JSON.parse(await cli(['keyring', 'reencrypt'])) as { signingKeys: number };
    expect(result.signingKeys).toBe(before.sealedUnderOtherKeys);
    const after = JSON.parse(await cli(['keyring', 'status'])) as {
      currentKeyVersion: string;
      sealedUnderOtherKeys: number;
      seals: { keyVersion: string; table: string; count: number }[];
    };
    expect(after.sealedUnderOtherKeys).toBe(0);
    expect(after.currentKeyVersion).toBe(instances[0]?.runtime.keyring.currentKeyVersion);
    expect(after.seals.map((row) => row.table).sort()).toEqual(['provider_webhook_secrets', 'signing_keys']);
  });
});
