import { describe, expect, it } from 'vitest';
import { type CheckStatus, HealthRegistry } from '../health.ts';
import { createLogger } from '../logging.ts';
import { workerRuns } from '../metrics.ts';
import { startMetricsListener } from './metrics-listener.ts';

function registryWith(checks: { name: string; critical: boolean; status: CheckStatus }[]): HealthRegistry {
  const health = new HealthRegistry();
  for (const { name, critical, status } of checks) {
    health.register({ name, critical, check: async () => ({ status, detail: `${name} is ${status}` }) });
  }
  return health;
}

const silent = { host: '127.0.0.1', port: 0, logger: createLogger('silent'), health: new HealthRegistry() };

describe('the worker metrics listener', () => {
  it('serves the process registry at /metrics, liveness, and 404 for anything else', async () => {
    workerRuns.inc({ worker: 'metrics_listener_test', result: 'success' });
    const listener = await startMetricsListener(silent);
    try {
      const metrics = await fetch(`${listener.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain(
        'worker_runs_total{worker="metrics_listener_test",result="success"} 1',
      );
      expect((await fetch(`${listener.url}/health/live`)).status).toBe(200);
      expect((await fetch(`${listener.url}/v1/transfers`)).status).toBe(404);
    } finally {
      await listener.stop();
    }
  });

  it('answers readiness 200 with each check while every critical check is up, degraded ones included', async () => {
    const health = registryWith([
      { name: 'postgresql', critical: true, status: 'ok' },
      { name: 'workers', critical: false, status: 'degraded' },
    ]);
    const listener = await startMetricsListener({ ...silent, health });
    try {
      const ready = await fetch(`${listener.url}/health/ready`);
      expect(ready.status).toBe(200);
      const body = (await ready.json()) as { status: string; checks: Record<string, unknown> };
      expect(body.status).toBe('ready');
      expect(body.checks.postgresql).toMatchObject({ critical: true, status: 'ok' });
      expect(body.checks.workers).toMatchObject({ critical: false, status: 'degraded' });
    } finally {
      await listener.stop();
    }
  });

  it('answers readiness 503 not_ready when a critical check (its own loops) is down', async () => {
    const health = registryWith([
      { name: 'postgresql', critical: true, status: 'ok' },
      { name: 'loops', critical: true, status: 'down' },
    ]);
    const listener = await startMetricsListener({ ...silent, health });
    try {
      const ready = await fetch(`${listener.url}/health/ready`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; checks: Record<string, unknown> };
      expect(body.status).toBe('not_ready');
      expect(body.checks.loops).toMatchObject({ status: 'down', detail: 'loops is down' });
    } finally {
      await listener.stop();
    }
  });

  it('refuses to start on a port that is taken, so a misconfiguration is seen at start', async () => {
    const first = await startMetricsListener(silent);
    try {
      const port = Number(new URL(first.url).port);
      await expect(startMetricsListener({ ...silent, port })).rejects.toThrow(
        `port ${port} on 127.0.0.1 is in use; set WORKER_METRICS_PORT to a free port`,
      );
    } finally {
      await first.stop();
    }
  });
});
