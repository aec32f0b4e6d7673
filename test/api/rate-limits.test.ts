import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { samplesOf } from '../support/metrics.ts';
import { waitFor } from '../support/process.ts';
import { startTestService, type TestService } from '../support/service.ts';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.ts';

/**
 * Acceptance 3 of issue 19: two instances share one Redis (the machine's, through a TCP relay
 * that stands in for the network), so a caller over its limit is refused on both; with the relay
 * stopped the instances keep serving under per-instance limits, and `rate_limit_redis_up` and
 * readiness say so. Each test counts under its own key prefix, so runs never share counters.
 */

const redis = { host: '127.0.0.1', port: 6379 };
const callerMax = 4;
const addressMax = 3;
const readinessWaitMs = 5_000;

let db: TestDatabase;
let relay: TcpRelay | undefined;
let instances: TestService[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterEach(async () => {
  for (const instance of instances) await instance.close();
  instances = [];
  await relay?.close();
  relay = undefined;
});

afterAll(async () => {
  await db.drop();
});

async function startTwo(env: Record<string, string>): Promise<[TestService, TestService]> {
  const shared = {
    RATE_LIMIT_CALLER_MAX: String(callerMax),
    RATE_LIMIT_ADDRESS_MAX: String(addressMax),
    RATE_LIMIT_REDIS_PREFIX: `test:${randomUUID()}:`,
    ...env,
  };
  const first = await startTestService({ db, env: shared });
  instances.push(first);
  const second = await startTestService({ db, env: shared });
  instances.push(second);
  return [first, second];
}

async function startSharingRedis(): Promise<[TestService, TestService]> {
  relay = await startTcpRelay(redis);
  const pair = await startTwo({ REDIS_URL: `redis://127.0.0.1:${relay.port}` });
  // Readiness waits for the connection being made, so counting starts in Redis.
  for (const instance of pair) expect(await redisStatus(instance)).toBe('ok');
  return pair;
}

/** An authenticated read: 404 for a random account, counted against the token's subject. */
async function asCaller(instance: TestService, token: string) {
  return instance.app.inject({
    method: 'GET',
    url: `/v1/accounts/${randomUUID()}`,
    headers: { authorization: `Bearer ${token}` },
  });
}

/** The public status page, counted against the source address. */
async function fromAddress(instance: TestService, address: string) {
  return instance.app.inject({ method: 'GET', url: '/status', remoteAddress: address });
}

async function redisStatus(instance: TestService): Promise<string | undefined> {
  const response = await instance.app.inject({ method: 'GET', url: '/health/ready' });
  return (response.json() as { checks: Record<string, { status: string }> }).checks.redis?.status;
}

async function metric(instance: TestService, name: string): Promise<number | undefined> {
  const response = await instance.app.inject({ method: 'GET', url: '/metrics' });
  return samplesOf(response.body).find((sample) => sample.name === name)?.value;
}

function expectRefused(response: Awaited<ReturnType<typeof asCaller>>, limit: number): void {
  expect(response.statusCode).toBe(429);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ type: 'request/rate-limited', status: 429 });
  const retryAfter = Number(response.headers['retry-after']);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(response.headers['ratelimit-limit']).toBe(String(limit));
  expect(response.headers['ratelimit-remaining']).toBe('0');
}

describe('rate limits shared through Redis', () => {
  it('refuses a caller over its limit on both instances, and only that caller', async () => {
    const [first, second] = await startSharingRedis();
    const token = await first.token('viewer', 'busy-integration');
    const statuses = [];
    for (let request = 0; request < callerMax; request += 1) {
      const response = await asCaller(request % 2 === 0 ? first : second, token);
      statuses.push(response.statusCode);
      expect(response.headers['ratelimit-remaining']).toBe(String(callerMax - request - 1));
    }
    expect(statuses).toEqual([404, 404, 404, 404]);
    expectRefused(await asCaller(first, token), callerMax);
    expectRefused(await asCaller(second, token), callerMax);
    // Another caller, and readiness, are not held back by this one.
    const other = await second.token('viewer', 'quiet-integration');
    expect((await asCaller(first, other)).statusCode).toBe(404);
    expect((await asCaller(second, other)).statusCode).toBe(404);
    expect(await metric(first, 'rate_limit_redis_up')).toBe(1);
  });

  it('limits the public status page per source address across instances, never health', async () => {
    const [first, second] = await startSharingRedis();
    const address = '203.0.113.7';
    const statuses = [];
    for (let request = 0; request < addressMax; request += 1) {
      statuses.push((await fromAddress(request % 2 === 0 ? first : second, address)).statusCode);
    }
    expect(statuses).toEqual([200, 200, 200]);
    expectRefused(await fromAddress(first, address), addressMax);
    expectRefused(await fromAddress(second, address), addressMax);
    expect((await fromAddress(second, '203.0.113.8')).statusCode).toBe(200);
    for (let request = 0; request < addressMax + 2; request += 1) {
      const live = await first.app.inject({ method: 'GET', url: '/health/live', remoteAddress: address });
      expect(live.statusCode).toBe(200);
    }
  });

  it('keeps serving with per-instance limits while Redis is unreachable, and says so', async () => {
    const [first, second] = await startSharingRedis();
    const fallbacksBefore = (await metric(first, 'rate_limit_store_fallback_total')) ?? 0;
    await relay?.close();
    relay = undefined;
    await waitFor(
      async () => ((await redisStatus(first)) === 'down' ? true : undefined),
      readinessWaitMs,
      'readiness to report redis down',
    );
    expect(await redisStatus(second)).toBe('down');
    const token = await first.token('viewer', 'during-outage');
    // Each instance now counts on its own: the caller gets the full limit on each.
    for (const instance of [first, second]) {
      for (let request = 0; request < callerMax; request += 1) {
        expect((await asCaller(instance, token)).statusCode).toBe(404);
      }
      expectRefused(await asCaller(instance, token), callerMax);
    }
    expect(await metric(first, 'rate_limit_redis_up')).toBe(0);
    expect(await metric(first, 'rate_limit_store_fallback_total')).toBe(
      fallbacksBefore + 2 * (callerMax + 1),
    );
    const ready = await first.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
  });
});

/** A relay to Redis that can go silent: connections stay open, nothing more is forwarded. */
async function startSilenceableRelay(): Promise<{ port: number; silence(): void; close(): Promise<void> }> {
  let silent = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(redis);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
    }
    client.on('data', (chunk: Buffer) => {
      if (!silent) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!silent) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    silence: () => {
      silent = true;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('a Redis that stops answering', () => {
  it('is given the command timeout (the request does not hang), then it is counted per instance and served', async () => {
    const silent = await startSilenceableRelay();
    try {
      const [first] = await startTwo({ REDIS_URL: `redis://127.0.0.1:${silent.port}` });
      expect(await redisStatus(first)).toBe('ok');
      const token = await first.token('viewer', 'silent-redis');
      expect((await asCaller(first, token)).statusCode).toBe(404);
      const fallbacksBefore = (await metric(first, 'rate_limit_store_fallback_total')) ?? 0;
      silent.silence();
      const response = await asCaller(first, token);
      expect(response.statusCode).toBe(404);
      // Counted afresh in memory: the Redis count of 1 is out of reach.
      expect(response.headers['ratelimit-remaining']).toBe(String(callerMax - 1));
      expect(await metric(first, 'rate_limit_store_fallback_total')).toBe(fallbacksBefore + 1);
      expect(await metric(first, 'rate_limit_redis_up')).toBe(0);
    } finally {
      for (const instance of instances) await instance.close();
      instances = [];
      await silent.close();
    }
  });
});

describe('rate limits in the API description', () => {
  it('documents the 429 with its headers on limited routes, and none on health', async () => {
    const [first] = await startTwo({});
    const document = (await first.app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, { responses: Record<string, { headers?: object }> }>>;
    };
    const refused = document.paths['/v1/accounts/{id}']?.get?.responses['429'];
    expect(Object.keys(refused?.headers ?? {}).sort()).toEqual([
      'ratelimit-limit',
      'ratelimit-remaining',
      'ratelimit-reset',
      'retry-after',
    ]);
    expect(document.paths['/status']?.get?.responses['429']).toBeDefined();
    expect(document.paths['/health/ready']?.get?.responses['429']).toBeUndefined();
  });
});

describe('rate limits without Redis', () => {
  it('counts in each instance on its own', async () => {
    const [first, second] = await startTwo({});
    const token = await first.token('viewer', 'memory-caller');
    for (let request = 0; request < callerMax; request += 1) {
      expect((await asCaller(first, token)).statusCode).toBe(404);
    }
    expectRefused(await asCaller(first, token), callerMax);
    expect((await asCaller(second, token)).statusCode).toBe(404);
  });
});
