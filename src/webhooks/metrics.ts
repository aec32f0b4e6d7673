import { Counter, Gauge } from 'prom-client';
import type { Executor } from '../platform/db/types.ts';
import { registry } from '../platform/metrics.ts';
import { countOpenDeliveries } from './data.ts';

export const deliveryOutcomes = ['delivered', 'failed_attempt', 'dead_lettered'] as const;
export type DeliveryOutcome = (typeof deliveryOutcomes)[number];

export const merchantWebhookDeliveries = new Counter({
  name: 'merchant_webhook_deliveries_total',
  help: 'Merchant webhook delivery outcomes: delivered, failed_attempt (will be retried), dead_lettered.',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
for (const outcome of deliveryOutcomes) merchantWebhookDeliveries.inc({ outcome }, 0);

/**
 * How fresh the gauges are at most. A scrape inside this window reuses the last count, so many
 * scrapers (or a fast scrape interval) cost at most one count query per window per process.
 */
export const gaugeCacheMs = 5_000;

/**
 * Why the gauges are computed at scrape time from the database, not set by the worker: `/metrics`
 * is served by API processes, and a worker may run in another process (`settledesk worker`) that
 * serves no metrics at all, so a value the worker set would never be seen, and a restarted process
 * would report 0 until its next update. Counted from the database, every process reports the same
 * true figure (alert on max() across instances). The cost is two counts over partial indexes per
 * `gaugeCacheMs` per process, proportional to the backlog and dead letters, not to
 * the history. If the count fails (database down), the last value stays and the scrape still
 * succeeds: the database's own alerts cover that case.
 */
let source: Executor | undefined;
let cached: { at: number; counts: Promise<{ pending: number; deadLettered: number }> } | undefined;
let last = { pending: 0, deadLettered: 0 };

/** Where the gauges count from; set by the routes and tasks of this process. */
export function countGaugesFrom(db: Executor): void {
  source = db;
  cached = undefined;
}

async function currentCounts(): Promise<{ pending: number; deadLettered: number }> {
  if (source === undefined) return last;
  const now = Date.now();
  if (cached === undefined || now - cached.at > gaugeCacheMs) {
    const db = source;
    cached = {
      at: now,
      counts: countOpenDeliveries(db).then(
        (counts) => {
          last = counts;
          return counts;
        },
        () => last,
      ),
    };
  }
  return cached.counts;
}

export const merchantWebhookBacklog = new Gauge({
  name: 'merchant_webhook_backlog',
  help: 'Merchant webhook deliveries not yet delivered nor dead-lettered (counted from the database).',
  registers: [registry],
  async collect() {
    this.set((await currentCounts()).pending);
  },
});

export const merchantWebhookDeadLetters = new Gauge({
  name: 'merchant_webhook_dead_letters',
  help: 'Merchant webhook deliveries in the dead-letter queue, not replayed (counted from the database).',
  registers: [registry],
  async collect() {
    this.set((await currentCounts()).deadLettered);
  },
});
