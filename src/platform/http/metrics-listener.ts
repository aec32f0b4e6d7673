import { createServer, type ServerResponse } from 'node:http';
import type { HealthRegistry } from '../health.ts';
import type { Logger } from '../logging.ts';
import { registry } from '../metrics.ts';
import { listenFailure } from '../ports.ts';

/**
 * `GET /metrics`, `/health/live` and `/health/ready` for a process that serves no API:
 * `settledesk worker`. Counters such as `worker_runs_total` and the settlement metrics live in the
 * process that does the work, so without this a split-out worker would be invisible to Prometheus.
 * Readiness answers as the API's does (200 ready, 503 not_ready, each check in the body).
 */
export async function startMetricsListener(options: {
  host: string;
  port: number;
  logger: Logger;
  health: HealthRegistry;
}): Promise<{ url: string; stop(): Promise<void> }> {
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
      return;
    }
    if (request.method === 'GET' && request.url === '/health/live') {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"live"}');
      return;
    }
    if (request.method === 'GET' && request.url === '/health/ready') {
      options.health.run().then(
        ({ ready, checks }) =>
          sendJson(response, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks }),
        () => response.writeHead(500).end(),
      );
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        listenFailure(error, {
          host: options.host,
          port: options.port,
          variable: 'WORKER_METRICS_PORT',
          hostVariable: 'HOST',
        }),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const url = `http://${options.host}:${port}`;
  options.logger.info({ url }, 'worker metrics listening');
  return {
    url,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
