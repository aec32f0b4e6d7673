import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNetwork, type TestNetwork } from '../../src/sandbox/test-support.ts';
import { startJobs } from '../../src/server.ts';
import { endpointsOf } from '../support/payouts.ts';
import { startTestService, type TestService } from '../support/service.ts';

type Ready = {
  status: string;
  checks: Record<string, { name: string; critical: boolean; status: string; detail?: string }>;
};

/**
 * Just enough of Redis's protocol for a client to connect and ping: INFO (the client's ready
 * check) says the data set is loaded, PING answers PONG. A fresh machine runs no Redis server.
 */
function startFakeRedis(): Promise<{ url: string; server: Server }> {
  const server = createServer((socket) => {
    socket.on('data', (data) => {
      const commands = data.toString('latin1').match(/\*\d+\r\n\$\d+\r\n[A-Za-z]+/g) ?? [];
      for (const command of commands) {
        const name = command.split('\r\n')[2]!.toUpperCase();
        if (name === 'INFO') {
          const info = '# Persistence\r\nloading:0\r\n';
          socket.write(`$${info.length}\r\n${info}\r\n`);
        } else socket.write(name === 'PING' ? '+PONG\r\n' : '+OK\r\n');
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      resolve({ url: `redis://127.0.0.1:${port}`, server });
    });
  });
}

/** A port on which nothing listens: connecting is refused at once. */
const unreachableRedisUrl = 'redis://127.0.0.1:1';

let network: TestNetwork;
let redis: { url: string; server: Server };
let service: TestService | undefined;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 100 });
  redis = await startFakeRedis();
});

afterEach(async () => {
  await service?.close();
  service = undefined;
});

afterAll(async () => {
  await network.stop();
  await new Promise((resolve) => redis.server.close(resolve));
});

async function ready(app: TestService['app']): Promise<{ statusCode: number; body: Ready }> {
  const response = await app.inject({ method: 'GET', url: '/health/ready' });
  return { statusCode: response.statusCode, body: response.json<Ready>() };
}

/** How often each path (horizon-0, horizon-1, rpc) was probed for readiness so far. */
async function healthProbes(app: TestService['app']): Promise<number[]> {
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  return ['horizon-0', 'horizon-1', 'rpc'].map((path) => {
    const line = metrics
      .split('\n')
      .find(
        (candidate) =>
          candidate.startsWith('stellar_request_duration_seconds_count{') &&
          candidate.includes(`path="${path}"`) &&
          candidate.includes('operation="health"'),
      );
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  });
}

describe('readiness of an API-only instance (no job worker, no settlement engine)', () => {
  it('reports the Stellar paths it reads (every Horizon, then RPC) and Redis when REDIS_URL is set', async () => {
    service = await startTestService({ stellar: endpointsOf(network), env: { REDIS_URL: redis.url } });
    const { statusCode, body } = await ready(service.app);
    expect(statusCode).toBe(200);
    expect(Object.keys(body.checks).sort()).toEqual([
      'postgresql',
      'redis',
      'stellar-horizon-0',
      'stellar-horizon-1',
      'stellar-rpc',
      'workers',
    ]);
    for (const name of ['stellar-horizon-0', 'stellar-horizon-1', 'stellar-rpc', 'redis']) {
      expect(body.checks[name]).toMatchObject({ status: 'ok', critical: false });
    }
  });

  it('reports an unreachable Redis down, with dependency_up 0, and stays ready', async () => {
    service = await startTestService({
      stellar: endpointsOf(network),
      env: { REDIS_URL: unreachableRedisUrl },
    });
    const { statusCode, body } = await ready(service.app);
    expect(statusCode).toBe(200);
    expect(body.checks.redis).toMatchObject({ status: 'down', critical: false });
    expect(body.checks.redis?.detail).toMatch(/\S/);
    const metrics = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^dependency_up\{dependency="redis"\} 0$/m);
  });

  it('probes each Stellar path once per check when the job worker and settlement engine run in the same process', async () => {
    const stellar = endpointsOf(network);
    service = await startTestService({ stellar });
    const worker = await startJobs(service.runtime, service.domains, stellar);
    try {
      expect(service.domains.settlement.chain).toBeDefined();
      const before = await healthProbes(service.app);
      const { body } = await ready(service.app);
      expect(body.checks['stellar-rpc']).toMatchObject({ status: 'ok', critical: false });
      const after = await healthProbes(service.app);
      expect(after.map((count, index) => count - before[index]!)).toEqual([1, 1, 1]);
    } finally {
      await worker.stop();
    }
  });

  it('has no Redis check without REDIS_URL and no Stellar checks without Stellar endpoints', async () => {
    service = await startTestService();
    const { body } = await ready(service.app);
    expect(Object.keys(body.checks).sort()).toEqual(['postgresql', 'workers']);
  });
});
