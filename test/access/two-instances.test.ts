import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../src/platform/auth/tokens.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { type Instance, startInstances, stopInstances } from '../support/instances.ts';
import { runCli, waitFor } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

const propagationMsMax = 5_000;
let db: TestDatabase;
let env: Record<string, string>;
const instances: Instance[] = [];

/**
 * Two API instances on one database. The fallback reload is set far beyond the 5 s budget, so a
 * pass proves the LISTEN/NOTIFY path carries changes, not the periodic reload.
 */
beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db, { ACCESS_RELOAD_MS: '60000' });
  instances.push(...(await startInstances(env, 2)));
});

afterAll(async () => {
  await stopInstances(instances);
  await db.drop();
});

async function statuses(token: string): Promise<number[]> {
  return Promise.all(
    instances.map(async ({ service }) => {
      const response = await fetch(`${service.url}/internal/modes`, {
        headers: { authorization: `Bearer ${token}` },
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

async function within(what: string, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  await waitFor(async () => ((await check()) ? true : undefined), propagationMsMax, what);
  return Date.now() - started;
}

const allAre = (code: number) => async (token: string) =>
  (await statuses(token)).every((status) => status === code);

describe('signing-key rotation across instances, without restarts', () => {
  it('keeps old tokens working after a promotion and refuses them everywhere within 5 s of retirement', async () => {
    const first = instances[0]?.runtime;
    if (!first) throw new Error('no instance');
    const keyA = first.keyring.signingKey().kid;
    const tokenA = await issueToken(first.keyring, { subject: 'olga', role: 'operator', ttlSeconds: 600 });
    expect(await statuses(tokenA)).toEqual([200, 200]);

    const keyB = JSON.parse(await cli(['keys', 'add', '--as', 'sec-lead'])).kid as string;
    await cli(['keys', 'promote', keyB, '--as', 'sec-lead']);
    await within('every instance to sign with B', async () =>
      instances.every(({ runtime }) => runtime.keyring.signingKey().kid === keyB),
    );
    const issued = JSON.parse(await cli(['token', 'issue', '--sub', 'olga', '--role', 'operator']));
    expect(issued.kid).toBe(keyB);
    expect(await statuses(issued.token)).toEqual([200, 200]);
    expect(await statuses(tokenA)).toEqual([200, 200]);

    await cli(['keys', 'retire', keyA, '--as', 'sec-lead']);
    await within('tokens signed with A to be refused on both instances', () => allAre(401)(tokenA));
    expect(await statuses(issued.token)).toEqual([200, 200]);
    const listed = JSON.parse(await cli(['keys', 'list'])) as { kid: string; state: string }[];
    expect(listed.find((key) => key.kid === keyA)?.state).toBe('retired');
  });

  it('refuses to retire the current key', async () => {
    const current = instances[0]?.runtime.keyring.signingKey().kid ?? '';
    const result = await runCli(['keys', 'retire', current], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('keys/current');
  });
});

describe('user suspension across instances', () => {
  it("refuses a suspended user's still-valid token on both instances within 5 s, and accepts it after reinstatement", async () => {
    const runtime = instances[0]?.runtime;
    if (!runtime) throw new Error('no instance');
    const token = await issueToken(runtime.keyring, {
      subject: 'mallory',
      role: 'operator',
      ttlSeconds: 600,
    });
    const bystander = await issueToken(runtime.keyring, {
      subject: 'olga',
      role: 'operator',
      ttlSeconds: 600,
    });
    expect(await statuses(token)).toEqual([200, 200]);
    await cli(['users', 'suspend', 'mallory', '--reason', 'laptop stolen', '--as', 'sec-lead']);
    await within('the suspended token to be refused on both instances', () => allAre(401)(token));
    expect(await statuses(bystander)).toEqual([200, 200]);
    await cli([
      'users',
      'reinstate',
      'mallory',
      '--reason',
      'laptop recovered and wiped',
      '--as',
      'sec-lead',
    ]);
    await within('the token to work again', () => allAre(200)(token));
  });
});
