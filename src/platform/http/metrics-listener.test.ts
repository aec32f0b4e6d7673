import { describe, expect, it } from 'vitest';
import { createLogger } from '../logging.ts';
import { workerRuns } from '../metrics.ts';
import { startMetricsListener } from './metrics-listener.ts';

describe('the worker metrics listener', () => {
  it('serves the process registry at /metrics, liveness, and 404 for anything else', async () => {
    workerRuns.inc({ worker: 'metrics_listener_test', result: 'success' });
    const listener = await startMetricsListener({
      host: '127.0.0.1',
      port: 0,
      logger: createLogger('silent'),
    });
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

  it('refuses to start on a port that is taken, so a misconfiguration is seen at start', async () => {
    const first = await startMetricsListener({ host: '127.0.0.1', port: 0, logger: createLogger('silent') });
    try {
      const port = Number(new URL(first.url).port);
      await expect(
        startMetricsListener({ host: '127.0.0.1', port, logger: createLogger('silent') }),
      ).rejects.toThrow(`port ${port} on 127.0.0.1 is in use; set WORKER_METRICS_PORT to a free port`);
    } finally {
      await first.stop();
    }
  });
});
