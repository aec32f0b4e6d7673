import { Redis } from 'ioredis';
import { OperatingError } from './errors.ts';
import type { DependencyCheck } from './health.ts';
import type { Logger } from './logging.ts';

/** A connection not made within this is a Redis that cannot serve. */
const connectTimeoutMs = 2_000;
/** How long a check waits for a connection being made (a fresh start), under readiness's own bound. */
const readyWaitMs = 1_500;
/** Reconnect attempts back off by this step up to the maximum, for as long as the process runs. */
const reconnectStepMs = 200;
const reconnectDelayMsMax = 5_000;

/** `client` is shared: the rate limits count in it (src/platform/http/rate-limit.ts). */
export type RedisConnection = { client: Redis; check: DependencyCheck; close(): void };

/**
 * The connection to the optional Redis (`REDIS_URL`) and its readiness check `redis`. Redis is not
 * critical: nothing that moves or records money needs it, so readiness reports it down without
 * failing. Commands are refused at once while the connection is down (no offline queue), so the
 * check answers within its timeout instead of waiting for a reconnect.
 */
export function connectRedis(url: string, logger: Logger): RedisConnection {
  const client = new Redis(url, {
    connectTimeout: connectTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * reconnectStepMs, reconnectDelayMsMax),
  });
  // One line when the failure changes, not one per reconnect attempt.
  let lastFailure = '';
  client.on('error', (error: Error) => {
    if (error.message === lastFailure) return;
    lastFailure = error.message;
    logger.warn({ err: error }, 'redis connection failed');
  });
  client.on('ready', () => {
    lastFailure = '';
  });
  return {
    client,
    check: {
      name: 'redis',
      critical: false,
      check: async () => {
        if (client.status !== 'ready') await connected(client, readyWaitMs, () => lastFailure);
        await client.ping();
        return { status: 'ok' };
      },
    },
    close: () => client.disconnect(),
  };
}

/** Waits while the connection is being made; a connection that is down is reported at once. */
async function connected(client: Redis, waitMs: number, lastFailure: () => string): Promise<void> {
  const down = () =>
    new RedisDownError(`redis is ${client.status}${lastFailure() ? `: ${lastFailure()}` : ''}`);
  if (!['wait', 'connecting', 'connect'].includes(client.status)) throw down();
  let timer: NodeJS.Timeout | undefined;
  let onReady = () => {};
  let onError = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(down()), waitMs);
      onReady = resolve;
      onError = () => reject(down());
      client.once('ready', onReady);
      client.once('error', onError);
    });
  } finally {
    clearTimeout(timer);
    client.off('ready', onReady);
    client.off('error', onError);
  }
}

class RedisDownError extends OperatingError {
  override name = 'RedisDownError';
}
