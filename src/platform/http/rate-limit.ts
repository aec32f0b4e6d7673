import rateLimit from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { RateLimitConfig } from '../config.ts';
import { DomainError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { rateLimitRedisUp, rateLimitStoreFallback } from '../metrics.ts';
import type { App } from './app.ts';
import { problemResponse } from './problem-schema.ts';

/**
 * A Redis command that has not answered within this is a Redis that cannot serve: the request is
 * counted in this instance's memory instead of waiting (commands are refused at once while the
 * connection is down; this bounds a connection that is up but silent).
 */
export const redisCommandTimeoutMs = 250;
/** Counters the in-memory store keeps at most; the oldest go first when it is full. */
export const localKeysMax = 10_000;

export type Count = { current: number; ttlMs: number };

/**
 * One fixed window per key: the first request starts it with the window as its expiry, every
 * request increments it. A key left without expiry (a crash between the two calls in an older
 * version) gets one, so no caller is refused forever.
 */
const incrementScript = `
local current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`;

type RateLimitRedis = Redis & {
  settledeskRateLimit(key: string, windowMs: number): Promise<[number, number]>;
};

/** Per-instance fixed-window counters: the store without Redis, and the fallback while it is down. */
export class LocalCounters {
  readonly #counts = new Map<string, { current: number; resetAt: number }>();

  increment(key: string, windowMs: number, now = Date.now()): Count {
    const found = this.#counts.get(key);
    if (found !== undefined && found.resetAt > now) {
      found.current += 1;
      return { current: found.current, ttlMs: found.resetAt - now };
    }
    this.#counts.delete(key);
    if (this.#counts.size >= localKeysMax) this.#evict(now);
    this.#counts.set(key, { current: 1, resetAt: now + windowMs });
    return { current: 1, ttlMs: windowMs };
  }

  #evict(now: number): void {
    for (const [key, count] of this.#counts) if (count.resetAt <= now) this.#counts.delete(key);
    // Still full: the oldest window (first inserted) goes.
    const oldest = this.#counts.keys().next();
    if (this.#counts.size >= localKeysMax && !oldest.done) this.#counts.delete(oldest.value);
  }
}

/**
 * The counters behind the limits: Redis when configured, so every instance counts the same
 * caller once; this instance's memory otherwise, and while Redis does not answer (the request is
 * served under a per-instance limit rather than refused or failed). `rate_limit_redis_up` says
 * which one counts now (the last count, or the connection opening or closing since);
 * `rate_limit_store_fallback_total` counts the fallbacks.
 */
export class RateLimitCounters {
  readonly #local = new LocalCounters();
  readonly #redis: RateLimitRedis | undefined;
  readonly #prefix: string;
  readonly #logger: Logger;
  #redisFailing = false;

  constructor(options: { redis: Redis | undefined; prefix: string; logger: Logger }) {
    this.#prefix = options.prefix;
    this.#logger = options.logger;
    if (options.redis !== undefined) {
      const redis = options.redis as RateLimitRedis;
      if (typeof redis.settledeskRateLimit !== 'function') {
        redis.defineCommand('settledeskRateLimit', { numberOfKeys: 1, lua: incrementScript });
      }
      this.#redis = redis;
      // The connection's state moves the gauge too, so an idle instance is not reported down
      // (or up) on the strength of a count long ago.
      rateLimitRedisUp.set(redis.status === 'ready' ? 1 : 0);
      redis.on('ready', () => rateLimitRedisUp.set(1));
      redis.on('close', () => rateLimitRedisUp.set(0));
    }
  }

  async increment(key: string, windowMs: number): Promise<Count> {
    if (this.#redis === undefined) return this.#local.increment(key, windowMs);
    try {
      const [current, ttlMs] = await withTimeout(
        this.#redis.settledeskRateLimit(`${this.#prefix}${key}`, windowMs),
        redisCommandTimeoutMs,
      );
      this.#note(true);
      return { current, ttlMs };
    } catch (error) {
      this.#note(false, error);
      rateLimitStoreFallback.inc();
      return this.#local.increment(key, windowMs);
    }
  }

  /** One log line when the store changes, not one per request. */
  #note(ok: boolean, error?: unknown): void {
    rateLimitRedisUp.set(ok ? 1 : 0);
    if (ok === !this.#redisFailing) return;
    this.#redisFailing = !ok;
    if (ok) this.#logger.info('rate limits counted in redis again');
    else this.#logger.warn({ err: error }, 'redis unreachable: rate limits counted per instance');
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Who a request is counted against: the authenticated caller, else its source address. */
export function rateLimitKey(request: FastifyRequest): string {
  return request.principal === undefined ? `address:${request.ip}` : `caller:${request.principal.subject}`;
}

export const rateLimitedResponse = problemResponse(
  'request/rate-limited: over the caller or address limit; nothing done, retry after Retry-After',
  {
    'retry-after': { type: 'integer', minimum: 0, description: 'seconds until the window resets' },
    'ratelimit-limit': { type: 'integer', description: 'requests allowed per window' },
    'ratelimit-remaining': { type: 'integer', description: 'requests left in this window' },
    'ratelimit-reset': { type: 'integer', description: 'seconds until the window resets' },
  },
);

/**
 * Limits every route (health and metrics opt out with `rateLimit: false`) per caller (the token
 * subject, counted after authentication) or, on a public route, per source address, with the
 * IETF draft `RateLimit-*` headers and a 429 `request/rate-limited` with `Retry-After`. A request
 * refused by authentication is not counted: it was answered 401 before this hook runs.
 */
export async function registerRateLimit(
  app: App,
  config: RateLimitConfig,
  counters: RateLimitCounters,
): Promise<void> {
  app.addHook('onRoute', (route) => {
    const response = route.schema?.response as Record<string, unknown> | undefined;
    if (route.config?.rateLimit === false || response === undefined) return;
    route.schema = { ...route.schema, response: { ...response, 429: rateLimitedResponse } };
  });
  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    enableDraftSpec: true,
    timeWindow: config.windowMs,
    max: async (request) => (request.principal === undefined ? config.addressMax : config.callerMax),
    keyGenerator: rateLimitKey,
    store: counterStore(counters),
    errorResponseBuilder: (_request, context) =>
      new DomainError(
        'request/rate-limited',
        `more than ${context.max} requests in ${config.windowMs / 1_000} s; retry in ${Math.ceil(context.ttl / 1_000)} s`,
      ),
  });
}

/** The plugin's store interface (a class it instantiates) over the shared counters. */
function counterStore(counters: RateLimitCounters) {
  return class CounterStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ): void {
      counters.increment(key, timeWindow).then(
        (count) => callback(null, { current: count.current, ttl: count.ttlMs }),
        (error: Error) => callback(error),
      );
    }
    child(): CounterStore {
      return this;
    }
  };
}
