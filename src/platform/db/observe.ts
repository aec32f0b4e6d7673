import { Gauge, Histogram } from 'prom-client';
import { registry } from '../metrics.ts';
import { StatementGroups } from './statement-group.ts';
import type { Sql } from './types.ts';

/**
 * Query latency and pool use of the postgres.js pool, which exposes neither: `observeSql` wraps
 * the pool (and each transaction and reserved connection opened through it) so that every query
 * the service runs is timed from the moment postgres.js dispatches it (waiting for a connection
 * included) to its result, and each connection the service holds is counted while it holds it.
 *
 * Cost, measured with `npm run bench -- queries` (docs/benchmarks.md): a median of 7 µs of CPU per
 * query over five runs, between 0 and 12 µs on a shared machine (a proxy call, a cached group
 * lookup, two closures, a promise reaction, two clock reads, a histogram observation), up to 20 %
 * of the client-side CPU of `select 1`, the cheapest query there is; the wall-time difference
 * stayed within the run-to-run noise. A transfer's ten or so queries take milliseconds.
 */

/** The pools a process can have; each is a fixed label value. */
export type PoolName = 'main' | 'jobs';

/**
 * A bucket edge sits on the alert's threshold (100 ms), so `histogram_quantile(0.95, …) > 0.1` is
 * exact there rather than interpolated.
 */
const durationBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export const queryDuration = new Histogram({
  name: 'db_query_duration_seconds',
  help: 'Queries the service ran through its PostgreSQL pool, from dispatch (waiting for a connection included) to result, by statement group (verb:first_table).',
  labelNames: ['group'] as const,
  buckets: durationBuckets,
  registers: [registry],
});

/** What a pool reports when scraped. */
export type PoolFigures = { inUse: number; size: number; waiting: number };

const pools = new Map<object, { name: PoolName; figures: () => PoolFigures }>();

/** Figures of every pool with this name in the process, added up. */
function poolTotals(): Map<PoolName, PoolFigures> {
  const totals = new Map<PoolName, PoolFigures>();
  for (const { name, figures } of pools.values()) {
    const sum = totals.get(name) ?? { inUse: 0, size: 0, waiting: 0 };
    const now = figures();
    totals.set(name, {
      inUse: sum.inUse + now.inUse,
      size: sum.size + now.size,
      waiting: sum.waiting + now.waiting,
    });
  }
  return totals;
}

function poolGauge(name: string, help: string, pick: (figures: PoolFigures) => number): Gauge<'pool'> {
  return new Gauge({
    name,
    help,
    labelNames: ['pool'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [pool, figures] of poolTotals()) this.set({ pool }, pick(figures));
    },
  });
}

export const poolInUse = poolGauge(
  'db_pool_connections_in_use',
  'Connections of the pool the process holds now (a query, a transaction, a reserved connection), by pool (main: postgres.js, jobs: graphile-worker).',
  (figures) => figures.inUse,
);
export const poolSize = poolGauge(
  'db_pool_size',
  'The most connections the pool opens, by pool.',
  (figures) => figures.size,
);
export const poolWaiting = poolGauge(
  'db_pool_waiting',
  'Queries and transactions waiting because every connection of the pool is in use, by pool.',
  (figures) => figures.waiting,
);

/** Reports a pool's figures at each scrape until the returned function is called. */
export function registerPool(name: PoolName, figures: () => PoolFigures): () => void {
  const key = {};
  pools.set(key, { name, figures });
  return () => {
    pools.delete(key);
  };
}

const groups = new StatementGroups();

/** The parts of a postgres.js query this relies on (3.4.9): dispatch through `handler`, a Promise. */
type PendingQuery = Promise<unknown> & { handler: ((query: unknown) => unknown) & { debug?: unknown } };

function isPendingQuery(value: unknown): value is PendingQuery {
  return value instanceof Promise && typeof (value as { handler?: unknown }).handler === 'function';
}

/**
 * Times `query` from its dispatch to its result. A query that is never dispatched (a fragment
 * nested in another query) is never timed or counted. Settling is watched with the base
 * `Promise.prototype.then`: a postgres.js query's own `then` would execute it.
 */
function watch(query: unknown, group: string, holdsConnection: boolean, demand: Demand): void {
  if (!isPendingQuery(query)) return;
  const dispatch = query.handler;
  const timed = (pending: unknown) => {
    const started = performance.now();
    if (holdsConnection) demand.count += 1;
    const settle = () => {
      queryDuration.observe({ group }, (performance.now() - started) / 1_000);
      if (holdsConnection) demand.count -= 1;
    };
    Promise.prototype.then.call(query, settle, settle);
    return dispatch(pending);
  };
  // postgres.js reads `handler.debug` when it builds error stacks.
  timed.debug = dispatch.debug;
  query.handler = timed;
}

/** Connections wanted from the pool now: plain queries in flight, open transactions, reservations. */
type Demand = { count: number };

type AnyFunction = (...args: unknown[]) => unknown;

/**
 * `executor` with every query timed. `holdsConnection` is false inside a transaction or a reserved
 * connection: its queries share the one connection counted when it was taken.
 */
function observed<T extends object>(executor: T, demand: Demand, holdsConnection: boolean): T {
  return new Proxy(executor, {
    apply(target, self, args: unknown[]) {
      const result = Reflect.apply(target as AnyFunction, self, args);
      const strings = args[0];
      if (Array.isArray(strings) && 'raw' in strings)
        watch(result, groups.ofTemplate(strings as unknown as TemplateStringsArray), holdsConnection, demand);
      return result;
    },
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = value as AnyFunction;
      if (property === 'unsafe')
        return (text: string, ...rest: unknown[]) => {
          const result = method(text, ...rest);
          watch(result, groups.of(text), holdsConnection, demand);
          return result;
        };
      if (property === 'begin' || property === 'savepoint')
        return scoped(method, demand, property === 'begin');
      if (property === 'reserve') return reserve(method, demand);
      return method;
    },
  });
}

/** `begin(options?, fn)` and `savepoint(name?, fn)`: `fn` gets an observed transaction. */
function scoped(method: AnyFunction, demand: Demand, takesConnection: boolean): AnyFunction {
  return (...args: unknown[]) => {
    const work = args.pop() as AnyFunction;
    if (takesConnection) demand.count += 1;
    const result = method(...args, (tx: object) => work(observed(tx, demand, false))) as Promise<unknown>;
    if (!takesConnection) return result;
    return result.finally(() => {
      demand.count -= 1;
    });
  };
}

function reserve(method: AnyFunction, demand: Demand): AnyFunction {
  return async () => {
    demand.count += 1;
    let reserved: { release(): void };
    try {
      reserved = (await method()) as { release(): void };
    } catch (error) {
      demand.count -= 1;
      throw error;
    }
    const release = reserved.release.bind(reserved);
    let released = false;
    reserved.release = () => {
      if (!released) demand.count -= 1;
      released = true;
      release();
    };
    return observed(reserved, demand, false);
  };
}

/**
 * The pool with every query timed in `db_query_duration_seconds{group}` and its use reported as
 * pool `name`. postgres.js opens a connection for each query while fewer than `size` are open and
 * pipelines behind a busy one after that, so connections in use are the demand up to `size`, and
 * the rest of the demand waits. `unregister` stops reporting the pool (when it closes).
 */
export function observeSql(sql: Sql, name: PoolName, size: number): { sql: Sql; unregister(): void } {
  const demand: Demand = { count: 0 };
  const unregister = registerPool(name, () => ({
    inUse: Math.min(size, demand.count),
    size,
    waiting: Math.max(0, demand.count - size),
  }));
  return { sql: observed(sql, demand, true), unregister };
}
