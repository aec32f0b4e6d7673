import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointsOf, silentLogger } from '../../test/support/payouts.ts';
import { HealthRegistry } from '../platform/health.ts';
import { startTestNetwork, type TestNetwork } from '../sandbox/test-support.ts';
import { createSettlementChain } from './settlement-chain.ts';

let network: TestNetwork;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 100 });
});

afterAll(async () => {
  await network.stop();
});

describe('Stellar paths in readiness', () => {
  it('reports each path, and a path down leaves the service ready', async () => {
    const chain = createSettlementChain(endpointsOf(network), silentLogger);
    const health = new HealthRegistry();
    for (const check of chain.healthChecks()) health.register(check);
    const healthy = await health.run();
    expect(Object.keys(healthy.checks)).toEqual(['stellar-horizon-0', 'stellar-horizon-1', 'stellar-rpc']);
    expect(Object.values(healthy.checks).map((check) => check.status)).toEqual(['ok', 'ok', 'ok']);

    const down = network.sandbox.faults.add({ kind: 'listener_down', listener: 0 });
    const rpcDown = network.sandbox.faults.add({ kind: 'http_error', status: 503, route: 'rpc' });
    const degraded = await health.run();
    expect(degraded.ready).toBe(true);
    expect(Object.values(degraded.checks).map((check) => check.status)).toEqual(['down', 'ok', 'down']);
    expect(degraded.checks['stellar-horizon-0']?.detail).toContain(network.sandbox.horizonUrls[0]);
    network.sandbox.faults.remove(down.id);
    network.sandbox.faults.remove(rpcDown.id);
  });
});
