import { httpRequestDuration } from '../metrics.ts';
import type { App } from './app.ts';

/** Paths are route templates (`/v1/accounts/:id`), never raw URLs, so label cardinality is bounded. */
export function registerRequestMetrics(app: App): void {
  app.addHook('onResponse', async (request, reply) => {
    httpRequestDuration.observe(
      {
        method: request.method,
        path: request.routeOptions.url ?? 'unmatched',
        status: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });
}
