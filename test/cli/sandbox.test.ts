import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Horizon, Keypair } from '@stellar/stellar-sdk';
import { describe, expect, it } from 'vitest';
import { findRunningSandbox } from '../../src/sandbox/ownership.ts';
import { finished, runCli, spawnCli, waitFor } from '../support/process.ts';
import { tempDataDir } from '../support/service.ts';

const stopWithinMs = 10_000;

describe('settledesk sandbox', () => {
  it('runs the network alone, injects and clears faults from the CLI, and stops on SIGINT', async () => {
    const dataDir = await tempDataDir();
    const env = { SETTLEDESK_DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
    const child = spawnCli(['sandbox', '--port', '0', '--ledger-close-ms', '100'], env);
    const address = await waitFor(() => findRunningSandbox(join(dataDir, 'sandbox')), 30_000, 'the sandbox');
    expect(address.horizonUrls).toHaveLength(2);
    const account = Keypair.random().publicKey();
    expect((await fetch(`${address.friendbotUrl}?addr=${account}`)).status).toBe(200);
    const horizon = new Horizon.Server(address.horizonUrls[0] ?? '', { allowHttp: true });

    const added = await runCli(
      [
        '--json',
        'sandbox',
        'fault',
        'add',
        '--kind',
        'http_error',
        '--status',
        '503',
        '--route',
        'horizon.accounts',
      ],
      env,
    );
    expect(added.code, added.stderr).toBe(0);
    const { fault } = JSON.parse(added.stdout) as { fault: { id: string; kind: string } };
    expect(fault.kind).toBe('http_error');
    await expect(horizon.loadAccount(account)).rejects.toMatchObject({ response: { status: 503 } });
    const listed = await runCli(['sandbox', 'fault', 'list'], env);
    expect(listed.stdout).toContain(`${fault.id}  http_error  route horizon.accounts`);

    const cleared = await runCli(['sandbox', 'fault', 'clear', fault.id], env);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect((await horizon.loadAccount(account)).accountId()).toBe(account);

    const refused = await runCli(['sandbox', 'fault', 'add', '--kind', 'http_error', '--status', '418'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('status must be 500, 502, 503 or 429');

    const closed = await runCli(['--json', 'sandbox', 'close-ledger'], env);
    expect(closed.code, closed.stderr).toBe(0);
    expect(JSON.parse(closed.stdout).sequence).toBeGreaterThan(1);

    child.kill('SIGINT');
    const exit = await finished(child, stopWithinMs);
    expect(exit.code, exit.stderr).toBe(0);
    expect(existsSync(join(dataDir, 'sandbox', 'sandbox-endpoints.json'))).toBe(false);
    expect(existsSync(join(dataDir, 'sandbox', 'sandbox-network.json'))).toBe(true);
  });
});
