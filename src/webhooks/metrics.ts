import { Counter, Gauge } from 'prom-client';
import { databaseFigures, registry } from '../platform/metrics.ts';
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
 * The backlog and dead letters, counted from the database when scraped (`databaseFigures`: the
 * delivery job may run in a process that serves no metrics). The cost is two counts over partial
 * indexes per `gaugeCacheMs` per process, proportional to the backlog, not to the history.
 */
const deliveryFigures = databaseFigures(countOpenDeliveries, { pending: 0, deadLettered: 0 }, gaugeCacheMs);

/** Where the gauges count from; set by the routes and tasks of this process. */
export const countGaugesFrom = deliveryFigures.from;

export const merchantWebhookBacklog = new Gauge({
  name: 'merchant_webhook_backlog',
  help: 'Merchant webhook deliveries not yet delivered nor dead-lettered (counted from the database).',
  registers: [registry],
  async collect() {
    this.set((await deliveryFigures.current()).pending);
  },
});

export const merchantWebhookDeadLetters = new Gauge({
  name: 'merchant_webhook_dead_letters',
  help: 'Merchant webhook deliveries in the dead-letter queue, not replayed (counted from the database).',
  registers: [registry],
  async collect() {
    this.set((await deliveryFigures.current()).deadLettered);
  },
});
