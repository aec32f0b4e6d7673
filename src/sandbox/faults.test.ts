import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Horizon, NotFoundError, type Transaction } from '@stellar/stellar-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FaultSpec } from './faults.ts';
import { fund, paymentTransaction, startTestNetwork, statusOf, type TestNetwork } from './test-support.ts';

/**
 * Every fault kind as the official SDK sees it, and normal service once the fault is cleared.
 * Faults are added through the control API over HTTP in some tests and in-process in others.
 */

let network: TestNetwork;
/** An SDK client on the second Horizon listener. */
let horizon1: Horizon.Server;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 50, horizonListeners: 2, submissionTimeoutMs: 1_000 });
  horizon1 = new Horizon.Server(network.sandbox.horizonUrls[1] ?? '', { allowHttp: true });
});

afterEach(async () => {
  await clearFaults();
});

afterAll(async () => {
  await network.stop();
});

async function addFault(spec: FaultSpec | Record<string, unknown>, sandbox = network.sandbox) {
  return fetch(`${sandbox.controlUrl}/faults`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(spec),
  });
}

async function clearFaults(sandbox = network.sandbox): Promise<number> {
  const response = await fetch(`${sandbox.controlUrl}/faults`, { method: 'DELETE' });
  expect(response.status).toBe(200);
  return ((await response.json()) as { cleared: number }).cleared;
}

async function listFaults(): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${network.sandbox.controlUrl}/faults`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { faults: Array<Record<string, unknown>> }).faults;
}

/** The rejection of a promise that must reject. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail, but it succeeded');
    },
    (error: unknown) => error,
  );
}

/** Polls until the check returns a value other than undefined, for at most `timeoutMs`. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function nativeBalance(accountId: string, server: Horizon.Server = network.horizon): Promise<string> {
  const account = await server.loadAccount(accountId);
  return account.balances.find((balance) => balance.asset_type === 'native')?.balance ?? '';
}

async function latestHorizonLedger(server: Horizon.Server = network.horizon): Promise<number> {
  const page = await server.ledgers().order('desc').limit(1).call();
  return page.records[0]?.sequence ?? 0;
}

/** Opens a bare TCP connection to the URL's port: 'connected' or the socket error code. */
function connectionOutcome(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function hashOf(transaction: Transaction): string {
  return Buffer.from(transaction.hash()).toString('hex');
}

/** Resolves once Horizon on the given listener serves the transaction. */
function transactionFound(hash: string, server: Horizon.Server = network.horizon) {
  return waitFor(`transaction ${hash}`, () => server.transactions().transaction(hash).call());
}

async function fundedPair() {
  const [source, destination] = await Promise.all([fund(network), fund(network)]);
  return { source, destination };
}

describe('http_error', () => {
  it('rejects loadAccount with the SDK error carrying each injected status, until cleared', async () => {
    const account = await fund(network);
    for (const status of [503, 429, 500, 502] as const) {
      const added = await addFault({ kind: 'http_error', status });
      expect(added.status).toBe(201);
      const error = await rejectionOf(network.horizon.loadAccount(account.publicKey()));
      expect(statusOf(error)).toBe(status);
      expect(await clearFaults()).toBe(1);
      const loaded = await network.horizon.loadAccount(account.publicKey());
      expect(loaded.accountId()).toBe(account.publicKey());
    }
  });

  it('scoped to horizon.submit fails submissions while account reads keep working', async () => {
    const { source, destination } = await fundedPair();
    const transaction = await paymentTransaction(network, source, destination.publicKey(), '1');
    network.sandbox.faults.add({ kind: 'http_error', route: 'horizon.submit', status: 503 });

    const error = await rejectionOf(network.horizon.submitTransaction(transaction));
    expect(statusOf(error)).toBe(503);
    expect(await nativeBalance(destination.publicKey())).toBe('10000.0000000');
    expect((await network.horizon.loadAccount(source.publicKey())).sequence).toBe(
      (BigInt(transaction.sequence) - 1n).toString(),
    );

    network.sandbox.faults.clear();
    const result = await network.horizon.submitTransaction(transaction);
    expect(result.successful).toBe(true);
    expect(await nativeBalance(destination.publicKey())).toBe('10001.0000000');
  });

  it('scoped to one RPC method fails that method only', async () => {
    network.sandbox.faults.add({ kind: 'http_error', route: 'rpc.getLatestLedger', status: 500 });
    const error = await rejectionOf(network.rpcServer.getLatestLedger());
    expect(statusOf(error)).toBe(500);
    expect((await network.rpcServer.getNetwork()).passphrase).toBe(network.sandbox.networkPassphrase);
    expect(await latestHorizonLedger()).toBeGreaterThan(0);

    network.sandbox.faults.clear();
    expect((await network.rpcServer.getLatestLedger()).sequence).toBeGreaterThan(0);
  });

  it('on listener 0 leaves listener 1 serving the same account', async () => {
    const account = await fund(network);
    const added = await addFault({ kind: 'http_error', listener: 0, status: 502 });
    expect(added.status).toBe(201);

    const error = await rejectionOf(network.horizon.loadAccount(account.publicKey()));
    expect(statusOf(error)).toBe(502);
    expect((await horizon1.loadAccount(account.publicKey())).accountId()).toBe(account.publicKey());

    await clearFaults();
    expect((await network.horizon.loadAccount(account.publicKey())).accountId()).toBe(account.publicKey());
  });
});

describe('latency', () => {
  it('delays loadAccount by at least latencyMs, and clearing it removes the delay', async () => {
    const account = await fund(network);
    const latencyMs = 600;
    network.sandbox.faults.add({ kind: 'latency', route: 'horizon.accounts', latencyMs });

    const slowStart = performance.now();
    await network.horizon.loadAccount(account.publicKey());
    // A timer may fire a millisecond early as measured by performance.now.
    expect(performance.now() - slowStart).toBeGreaterThanOrEqual(latencyMs - 5);

    network.sandbox.faults.clear();
    const fastStart = performance.now();
    await network.horizon.loadAccount(account.publicKey());
    expect(performance.now() - fastStart).toBeLessThan(latencyMs);
  });
});

describe('hang', () => {
  it('leaves a request unanswered until the fault is cleared, which releases it', async () => {
    const account = await fund(network);
    network.sandbox.faults.add({ kind: 'hang', route: 'horizon.accounts' });

    const hung = network.horizon.loadAccount(account.publicKey()).then(
      () => 'answered' as const,
      (error: unknown) => error,
    );
    const timedOut = Symbol('timed out');
    expect(await Promise.race([hung, delay(300).then(() => timedOut)])).toBe(timedOut);
    // Other routes still answer while the account route hangs.
    expect(await latestHorizonLedger()).toBeGreaterThan(0);

    network.sandbox.faults.clear();
    // The held connection is closed: the SDK call fails instead of hanging forever.
    const released = await Promise.race([hung, delay(3_000).then(() => timedOut)]);
    expect(released).toBeInstanceOf(Error);
    expect((await network.horizon.loadAccount(account.publicKey())).accountId()).toBe(account.publicKey());
  });
});

describe('accepted_timeout', () => {
  it('status_504 answers 504 with the hash, yet the transaction applies', async () => {
    const { source, destination } = await fundedPair();
    const transaction = await paymentTransaction(network, source, destination.publicKey(), '1');
    const hash = hashOf(transaction);
    const added = await addFault({ kind: 'accepted_timeout', route: 'horizon.submit', mode: 'status_504' });
    expect(added.status).toBe(201);

    const error = await rejectionOf(network.horizon.submitTransaction(transaction));
    expect(statusOf(error)).toBe(504);
    const data = (error as { response: { data: { extras: { hash: string } } } }).response.data;
    expect(data.extras.hash).toBe(hash);

    await clearFaults();
    const record = await transactionFound(hash);
    expect(record.successful).toBe(true);
    expect(await nativeBalance(destination.publicKey())).toBe('10001.0000000');

    // Resubmitting the same envelope returns the stored result and does not pay twice.
    const again = await network.horizon.submitTransaction(transaction);
    expect(again.hash).toBe(hash);
    expect(again.successful).toBe(true);
    expect(await nativeBalance(destination.publicKey())).toBe('10001.0000000');
  });

  it('drop_connection fails the submit with a network error, yet the transaction applies once', async () => {
    const { source, destination } = await fundedPair();
    const transaction = await paymentTransaction(network, source, destination.publicKey(), '1');
    const hash = hashOf(transaction);
    network.sandbox.faults.add({
      kind: 'accepted_timeout',
      route: 'horizon.submit',
      mode: 'drop_connection',
    });

    const error = await rejectionOf(network.horizon.submitTransaction(transaction));
    expect(error).toBeInstanceOf(Error);
    expect(statusOf(error)).toBeUndefined();

    network.sandbox.faults.clear();
    const record = await transactionFound(hash);
    expect(record.successful).toBe(true);

    const again = await network.horizon.submitTransaction(transaction);
    expect(again.hash).toBe(hash);
    expect(again.successful).toBe(true);
    expect(await nativeBalance(destination.publicKey())).toBe('10001.0000000');
    const sourceAccount = await network.horizon.loadAccount(source.publicKey());
    expect(sourceAccount.sequence).toBe(transaction.sequence);
    expect(await nativeBalance(source.publicKey())).toBe('9998.9999900');
  });
});

describe('freeze_ledgers', () => {
  it('stops ledgers closing so a submission times out, and clearing it resumes closing', async () => {
    const { source, destination } = await fundedPair();
    const transaction = await paymentTransaction(network, source, destination.publicKey(), '1');
    const added = await addFault({ kind: 'freeze_ledgers' });
    expect(added.status).toBe(201);

    const frozenAt = await latestHorizonLedger();
    const frozenRpc = (await network.rpcServer.getLatestLedger()).sequence;
    const close = await fetch(`${network.sandbox.controlUrl}/ledgers/close`, { method: 'POST' });
    expect(close.status).toBe(409);
    // Submission waits for a ledger that never closes (submissionTimeoutMs is 1 s here): 504.
    const error = await rejectionOf(network.horizon.submitTransaction(transaction));
    expect(statusOf(error)).toBe(504);
    expect(await latestHorizonLedger()).toBe(frozenAt);
    expect((await network.rpcServer.getLatestLedger()).sequence).toBe(frozenRpc);
    expect(await nativeBalance(destination.publicKey())).toBe('10000.0000000');

    await clearFaults();
    await waitFor('ledgers to close again', async () =>
      (await latestHorizonLedger()) > frozenAt + 1 ? true : undefined,
    );
    expect((await network.rpcServer.getLatestLedger()).sequence).toBeGreaterThan(frozenRpc);
    // The transaction waiting in the queue is applied once ledgers close again.
    expect((await transactionFound(hashOf(transaction))).successful).toBe(true);
    expect(await nativeBalance(destination.publicKey())).toBe('10001.0000000');
  });
});

describe('stale_ingestion', () => {
  it('keeps Horizon reads lagLedgers behind while RPC already sees the transaction', async () => {
    const lagLedgers = 20;
    const { source, destination } = await fundedPair();
    const fundedAt = (await horizon1.loadAccount(destination.publicKey())).last_modified_ledger;
    await waitFor('the funding to be lagLedgers old', async () =>
      (await latestHorizonLedger()) > fundedAt + lagLedgers + 1 ? true : undefined,
    );
    const transaction = await paymentTransaction(network, source, destination.publicKey(), '1');
    const hash = hashOf(transaction);
    // Submit through listener 1, then make listener 0 lag behind the ledger that holds the payment.
    expect((await horizon1.submitTransaction(transaction)).successful).toBe(true);
    network.sandbox.faults.add({ kind: 'stale_ingestion', listener: 0, lagLedgers });

    expect(await nativeBalance(destination.publicKey())).toBe('10000.0000000');
    await expect(network.horizon.transactions().transaction(hash).call()).rejects.toBeInstanceOf(
      NotFoundError,
    );
    expect((await network.rpcServer.getTransaction(hash)).status).toBe('SUCCESS');
    expect(await nativeBalance(destination.publicKey(), horizon1)).toBe('10001.0000000');

    network.sandbox.faults.clear();
    expect((await transactionFound(hash)).successful).toBe(true);
    expect(await nativeBalance(destination.publicKey())).toBe('10001.0000000');
  });
});

describe('listener_down', () => {
  it('refuses connections on that port while the other listener serves, then serves again', async () => {
    const { source, destination: account } = await fundedPair();
    const url = network.sandbox.horizonUrls[0];
    const transaction = await paymentTransaction(network, source, account.publicKey(), '1');
    const added = await addFault({ kind: 'listener_down', listener: 0 });
    expect(added.status).toBe(201);

    // The SDK sees a network failure with no HTTP response (its fetch client reports only
    // "fetch failed"); underneath, the port refuses TCP connections.
    await waitFor('listener 0 to refuse connections', async () =>
      (await connectionOutcome(url ?? '')) === 'ECONNREFUSED' ? true : undefined,
    );
    const readError = await rejectionOf(network.horizon.loadAccount(account.publicKey()));
    expect(readError).toBeInstanceOf(Error);
    expect(statusOf(readError)).toBeUndefined();
    const submitError = await rejectionOf(
      network.horizon.submitTransaction(transaction, { skipMemoRequiredCheck: true }),
    );
    expect(submitError).toBeInstanceOf(Error);
    expect(statusOf(submitError)).toBeUndefined();
    expect((await horizon1.loadAccount(account.publicKey())).accountId()).toBe(account.publicKey());

    await clearFaults();
    const reopened = new Horizon.Server(url ?? '', { allowHttp: true });
    const loaded = await waitFor('listener 0 to serve again', () =>
      reopened.loadAccount(account.publicKey()),
    );
    expect(loaded.accountId()).toBe(account.publicKey());
    expect(network.sandbox.horizonUrls[0]).toBe(url);
    expect(await connectionOutcome(url ?? '')).toBe('connected');
    // The submission that never reached the network can now go through.
    expect((await network.horizon.submitTransaction(transaction)).successful).toBe(true);
    expect(await nativeBalance(account.publicKey())).toBe('10001.0000000');
  });
});

describe('rpc_unhealthy', () => {
  it('makes getHealth fail while other RPC methods answer, and clearing it reports healthy', async () => {
    const added = await addFault({ kind: 'rpc_unhealthy' });
    expect(added.status).toBe(201);

    await expect(network.rpcServer.getHealth()).rejects.toMatchObject({ code: -32603 });
    expect((await network.rpcServer.getLatestLedger()).sequence).toBeGreaterThan(0);

    await clearFaults();
    expect((await network.rpcServer.getHealth()).status).toBe('healthy');
  });
});

describe('fault lifetime and determinism', () => {
  it('expires a fault with durationMs by itself', async () => {
    const account = await fund(network);
    const fault = network.sandbox.faults.add({
      kind: 'http_error',
      route: 'horizon.accounts',
      status: 503,
      durationMs: 300,
    });
    expect(fault.expiresAt).toBeDefined();
    expect(statusOf(await rejectionOf(network.horizon.loadAccount(account.publicKey())))).toBe(503);

    const loaded = await waitFor('the fault to expire', () =>
      network.horizon.loadAccount(account.publicKey()),
    );
    expect(loaded.accountId()).toBe(account.publicKey());
    expect(await listFaults()).toEqual([]);
  });

  it('fires on the same requests in two sandboxes with the same seed', async () => {
    const outcomes = async (): Promise<boolean[]> => {
      const twin = await startTestNetwork({ ledgerCloseMs: 100, horizonListeners: 1, seed: 7 });
      try {
        const added = await addFault(
          { kind: 'http_error', route: 'horizon.ledgers', status: 500, rate: 0.5 },
          twin.sandbox,
        );
        expect(added.status).toBe(201);
        const results: boolean[] = [];
        for (let request = 0; request < 20; request += 1) {
          const passed = await twin.horizon
            .ledgers()
            .limit(1)
            .call()
            .then(
              () => true,
              (error: unknown) => {
                expect(statusOf(error)).toBe(500);
                return false;
              },
            );
          results.push(passed);
        }
        await clearFaults(twin.sandbox);
        expect((await twin.horizon.ledgers().limit(1).call()).records.length).toBe(1);
        return results;
      } finally {
        await twin.stop();
      }
    };
    const first = await outcomes();
    const second = await outcomes();
    expect(second).toEqual(first);
    expect(first).toContain(true);
    expect(first).toContain(false);
  });
});

describe('control API', () => {
  it('rejects an invalid fault spec with 400', async () => {
    const invalid = [
      { kind: 'meteor_strike' },
      { kind: 'http_error', status: 404 },
      { kind: 'http_error', status: 503, rate: 2 },
      { kind: 'listener_down' },
      { kind: 'latency' },
      { kind: 'stale_ingestion', lagLedgers: 0 },
      { kind: 'accepted_timeout', mode: 'shrug' },
      { kind: 'hang', route: 'not a route!' },
    ];
    for (const spec of invalid) {
      const response = await addFault(spec);
      expect(response.status, JSON.stringify(spec)).toBe(400);
    }
    const notJson = await fetch(`${network.sandbox.controlUrl}/faults`, { method: 'POST', body: '{' });
    expect(notJson.status).toBe(400);
    expect(await listFaults()).toEqual([]);
  });

  it('lists active faults and removes one by id', async () => {
    const first = (await (await addFault({ kind: 'latency', route: 'rpc', latencyMs: 10 })).json()) as {
      fault: { id: string };
    };
    network.sandbox.faults.add({ kind: 'http_error', route: 'horizon.payments', status: 429, rate: 0.25 });

    const listed = await listFaults();
    expect(listed).toEqual([
      expect.objectContaining({ id: first.fault.id, kind: 'latency', route: 'rpc', latencyMs: 10, rate: 1 }),
      expect.objectContaining({ kind: 'http_error', route: 'horizon.payments', status: 429, rate: 0.25 }),
    ]);

    const removed = await fetch(`${network.sandbox.controlUrl}/faults/${first.fault.id}`, {
      method: 'DELETE',
    });
    expect(removed.status).toBe(200);
    expect(await listFaults()).toEqual([expect.objectContaining({ kind: 'http_error' })]);
    expect(await clearFaults()).toBe(1);
    expect(await listFaults()).toEqual([]);
  });
});
