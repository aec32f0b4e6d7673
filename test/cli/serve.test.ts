import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/platform/db/embedded.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { finished, runCli, spawnCli, waitFor } from '../support/process.ts';
import { tempDataDir, testKeyringKey } from '../support/service.ts';

const stopWithinMs = 10_000;
const shutdownTimeoutMs = 8_000;
const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const db of databases) await db.drop();
});

type Ready = { status: string; checks: Record<string, { status: string }> };

async function readyBody(port: number): Promise<Ready | undefined> {
  const response = await fetch(`http://127.0.0.1:${port}/health/ready`);
  return response.status === 200 ? ((await response.json()) as Ready) : undefined;
}

function postgresProcessesFor(dataDir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes(join(dataDir, 'pg')));
}

async function holdPort(port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Processes still in the group of a `serve` that has exited: anything it forked and left. */
function processesInGroup(groupId: number): string[] {
  const out = execFileSync('ps', ['-eo', 'pgid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.trim().split(/\s+/)[0] === String(groupId));
}

/** After a failed start: no child process, no database, and the sandbox port can be bound again. */
async function expectReleased(groupId: number, dataDir: string, sandboxPort: number): Promise<void> {
  expect(processesInGroup(groupId)).toEqual([]);
  expect(postgresProcessesFor(dataDir)).toEqual([]);
  const rebound = await holdPort(sandboxPort);
  await rebound.close();
  expect(existsSync(join(dataDir, 'sandbox', 'sandbox-owner.pid'))).toBe(false);
}

async function issueKid(env: Record<string, string>): Promise<string> {
  const result = await runCli(['--json', 'token', 'issue', '--sub', 'persist', '--role', 'viewer'], env);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout).kid;
}

describe('settledesk serve', () => {
  it('exits 1 naming PORT when PORT is not a number', async () => {
    const result = await runCli(['serve'], { PORT: 'abc' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('PORT');
    expect(result.stderr).toContain('"abc"');
  });

  it('starts on an embedded PostgreSQL, stops cleanly on SIGINT, and keeps its data for the next start', async () => {
    const dataDir = await tempDataDir();
    const env = {
      SETTLEDESK_DATA_DIR: dataDir,
      PORT: String(await freePort()),
      SANDBOX_PORT: '0',
      SANDBOX_LEDGER_CLOSE_MS: '100',
      LOG_LEVEL: 'warn',
    };
    const port = Number(env.PORT);

    // Its own process group, so a signal to the group is what Ctrl-C in a terminal sends.
    const first = spawnCli(['serve'], env, { ownProcessGroup: true });
    const ready = await waitFor(() => readyBody(port), 90_000, 'first start to be ready');
    expect(ready.checks.postgresql?.status).toBe('ok');
    // The job worker runs inside `serve`: its first heartbeat makes readiness report it.
    await waitFor(
      async () => ((await readyBody(port))?.checks.workers?.status === 'ok' ? true : undefined),
      30_000,
      'the in-process worker to beat',
    );
    const kid = await issueKid(env);
    // With no Stellar URL configured, serve runs the sandbox network; the CLI finds it by its data folder.
    const sandbox = await runCli(['--json', 'sandbox', 'status'], env);
    expect(sandbox.code, sandbox.stderr).toBe(0);
    const { horizonUrls } = JSON.parse(sandbox.stdout) as { horizonUrls: string[] };
    expect(horizonUrls).toHaveLength(2);
    const funded = Keypair.random().publicKey();
    const friendbot = await fetch(`${horizonUrls[0]}/friendbot?addr=${funded}`);
    expect(friendbot.status).toBe(200);
    // Money in, end to end: a real sandbox payment with the account's memo, credited by the watcher.
    const service = JSON.parse(
      (await runCli(['--json', 'token', 'issue', '--sub', 'app', '--role', 'service'], env)).stdout,
    ) as { token: string };
    const created = await fetch(`http://127.0.0.1:${port}/v1/accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'customer', asset: 'XLM' }),
    });
    const customer = (await created.json()) as { id: string };
    const funding = await runCli(
      ['--json', 'sandbox', 'fund', '--account', customer.id, '--amount', '25'],
      env,
    );
    expect(funding.code, funding.stderr).toBe(0);
    expect(JSON.parse(funding.stdout)).toMatchObject({ accountId: customer.id, credited: true });
    const shown = await fetch(`http://127.0.0.1:${port}/v1/accounts/${customer.id}`, {
      headers: { authorization: `Bearer ${service.token}` },
    });
    expect(((await shown.json()) as { balance: string }).balance).toBe('25.0000000');
    const stopping = Date.now();
    process.kill(-(first.pid ?? 0), 'SIGINT');
    const exit = await finished(first, stopWithinMs + 5_000);
    expect(Date.now() - stopping).toBeLessThan(stopWithinMs);
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout).not.toMatch(/"level":"(error|fatal)"/);
    expect(postgresProcessesFor(dataDir)).toEqual([]);

    expect(existsSync(join(dataDir, 'sandbox', 'sandbox-endpoints.json'))).toBe(false);
    const stopped = await runCli(['sandbox', 'status'], env);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('no sandbox is running');

    const second = spawnCli(['serve'], env);
    await waitFor(() => readyBody(port), 60_000, 'second start to be ready');
    expect(await issueKid(env)).toBe(kid);
    // The sandbox network kept its state: the account funded before the restart is still there.
    const restarted = JSON.parse((await runCli(['--json', 'sandbox', 'status'], env)).stdout) as {
      horizonUrls: string[];
    };
    const account = await fetch(`${restarted.horizonUrls[0]}/accounts/${funded}`);
    expect(account.status).toBe(200);
    expect(((await account.json()) as { balances: { balance: string }[] }).balances[0]?.balance).toBe(
      '10000.0000000',
    );
    second.kill('SIGTERM');
    expect((await finished(second, stopWithinMs + 5_000)).code).toBe(0);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
  });

  it('exits 1 with one line naming PORT when PORT is taken, before the database starts, leaving nothing behind', async () => {
    const blocker = await holdPort(await freePort());
    const dataDir = await tempDataDir();
    const sandboxPort = await freePort();
    try {
      const child = spawnCli(
        ['serve'],
        {
          SETTLEDESK_DATA_DIR: dataDir,
          PORT: String(blocker.port),
          SANDBOX_PORT: String(sandboxPort),
          SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
          LOG_LEVEL: 'warn',
        },
        { ownProcessGroup: true },
      );
      // The database would take far longer than this to initialise: the port is checked first.
      const exit = await finished(child, shutdownTimeoutMs);
      expect(exit.code).toBe(1);
      expect(exit.stderr).toBe(
        `settledesk: port ${blocker.port} on 127.0.0.1 is in use; set PORT to a free port\n`,
      );
      expect(existsSync(join(dataDir, 'pg'))).toBe(false);
      await expectReleased(child.pid ?? 0, dataDir, sandboxPort);
    } finally {
      await blocker.close();
    }
  });

  it('exits 1 with one line naming SANDBOX_PORT when the sandbox Horizon port is taken, before the database starts', async () => {
    const blocker = await holdPort(await freePort());
    const dataDir = await tempDataDir();
    try {
      const child = spawnCli(
        ['serve'],
        {
          SETTLEDESK_DATA_DIR: dataDir,
          PORT: String(await freePort()),
          SANDBOX_PORT: String(blocker.port),
          SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
          LOG_LEVEL: 'warn',
        },
        { ownProcessGroup: true },
      );
      const exit = await finished(child, shutdownTimeoutMs);
      expect(exit.code).toBe(1);
      expect(exit.stderr).toBe(
        `settledesk: port ${blocker.port} on 127.0.0.1 is in use; set SANDBOX_PORT to a free port\n`,
      );
      expect(existsSync(join(dataDir, 'pg'))).toBe(false);
      expect(postgresProcessesFor(dataDir)).toEqual([]);
    } finally {
      await blocker.close();
    }
  });

  it('exits 1 with one line naming PORT when PORT is taken while the database starts, and releases the database, the sandbox and its timers', async () => {
    const dataDir = await tempDataDir();
    const port = await freePort();
    const sandboxPort = await freePort();
    const child = spawnCli(
      ['serve'],
      {
        SETTLEDESK_DATA_DIR: dataDir,
        PORT: String(port),
        SANDBOX_PORT: String(sandboxPort),
        SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
        ACCESS_RELOAD_MS: '100',
        LOG_LEVEL: 'info',
      },
      { ownProcessGroup: true },
    );
    // A first start initialises the cluster for many seconds: the port is taken after its check.
    await waitFor(
      async () => (child.output().stdout.includes('initialising embedded PostgreSQL') ? true : undefined),
      60_000,
      'the embedded database to start initialising',
    );
    const blocker = await holdPort(port);
    try {
      await waitFor(
        async () => (child.output().stderr.includes('is in use') ? true : undefined),
        90_000,
        'the start to fail',
      );
      const exit = await finished(child, shutdownTimeoutMs);
      expect(exit.code).toBe(1);
      expect(exit.stderr).toBe(`settledesk: port ${port} on 127.0.0.1 is in use; set PORT to a free port\n`);
      expect(exit.stdout).not.toContain('access reload failed');
      await expectReleased(child.pid ?? 0, dataDir, sandboxPort);
    } finally {
      child.kill('SIGKILL');
      await blocker.close();
    }
  });

  it('uses the server named by DATABASE_URL instead of starting its own', async () => {
    const db = await createTestDatabase();
    databases.push(db);
    const dataDir = await tempDataDir();
    const port = await freePort();
    const child = spawnCli(['serve'], {
      DATABASE_URL: db.url,
      SETTLEDESK_KEYRING_KEY: testKeyringKey,
      SETTLEDESK_DATA_DIR: dataDir,
      SANDBOX_PORT: '0',
      PORT: String(port),
      LOG_LEVEL: 'warn',
    });
    const ready = await waitFor(() => readyBody(port), 60_000, 'start on DATABASE_URL');
    expect(ready.checks.postgresql?.status).toBe('ok');
    expect(existsSync(join(dataDir, 'pg'))).toBe(false);
    const [row] = await db.sql<{ count: bigint }[]>`
      select count(*)::int8 as count from pg_stat_activity where datname = ${db.name} and application_name = 'settledesk-api'`;
    expect(row?.count).toBeGreaterThan(0n);
    child.kill('SIGTERM');
    const exit = await finished(child, stopWithinMs + 5_000);
    expect(exit.code, `${exit.signal} ${exit.stderr} ${exit.stdout.slice(-3000)}`).toBe(0);
  });
});

describe('settledesk migrate', () => {
  it('applies the schema once when two migrators race on an empty database', async () => {
    const db = await createTestDatabase({ empty: true });
    databases.push(db);
    const env = {
      DATABASE_URL: db.url,
      SETTLEDESK_KEYRING_KEY: testKeyringKey,
      SETTLEDESK_DATA_DIR: await tempDataDir(),
    };
    const [a, b] = await Promise.all([
      runCli(['--json', 'migrate'], env),
      runCli(['--json', 'migrate'], env),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const files = readdirSync(new URL('../../migrations/', import.meta.url)).filter((name) =>
      name.endsWith('.sql'),
    );
    const appliedTotal = JSON.parse(a.stdout).applied.length + JSON.parse(b.stdout).applied.length;
    expect(appliedTotal).toBe(files.length);
    const [row] = await db.sql<{ total: number; distinct: number }[]>`
      select count(*)::int as total, count(distinct version)::int as distinct
      from schema_migrations where version > 0`;
    expect(row).toEqual({ total: files.length, distinct: files.length });
    const [worker] = await db.sql`select 1 as present from pg_namespace where nspname = 'graphile_worker'`;
    expect(worker).toBeDefined();
  });
});
