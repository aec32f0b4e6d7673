import { Counter, Gauge } from 'prom-client';
import { registry } from '../platform/metrics.ts';

/**
 * Payout metrics. The queue gauges are set by the settlement engine each round (every instance
 * that runs a worker reports the same database-wide figure; alert on max()).
 */

export const manualReviewQueueSize = new Gauge({
  name: 'payout_manual_review_queue_size',
  help: 'Payouts waiting in the manual review queue for two admins to resolve them.',
  registers: [registry],
});

export const manualReviewTransitions = new Counter({
  name: 'payout_manual_review_transitions_total',
  help: 'Payouts entering (entered) or leaving (confirm_sent, refund_failed) manual review.',
  labelNames: ['action'] as const,
  registers: [registry],
});

export const payoutsWaitingForNetwork = new Gauge({
  name: 'payouts_waiting_for_network',
  help: 'Payouts whose settlement is waiting because no Stellar path (Horizon or RPC) answered.',
  registers: [registry],
});

export const payoutTransitions = new Counter({
  name: 'payout_transitions_total',
  help: 'Payout state transitions made by the settlement engine, by transition name.',
  labelNames: ['transition'] as const,
  registers: [registry],
});

export const settlementAttempts = new Counter({
  name: 'settlement_attempts_total',
  help: 'Settlement attempts (transactions) by how they ended: succeeded, failed, expired, abandoned.',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const payoutOperationsSubmitted = new Counter({
  name: 'payout_operations_submitted_total',
  help: 'Payment operations placed in settlement transactions (a rebuilt payout counts again).',
  registers: [registry],
});

for (const action of ['entered', 'confirm_sent', 'refund_failed']) manualReviewTransitions.inc({ action }, 0);
for (const outcome of ['succeeded', 'failed', 'expired', 'abandoned']) settlementAttempts.inc({ outcome }, 0);
