import { Counter, Gauge } from 'prom-client';
import { registry } from '../platform/metrics.ts';

export const depositWebhooks = new Counter({
  name: 'deposit_webhooks_total',
  help: 'Provider deposit webhooks by provider and outcome (credited, replay, mismatch, rejected, dead_letter, unavailable, replayed).',
  labelNames: ['provider', 'outcome'] as const,
  registers: [registry],
});

export const webhookSignatureFailures = new Counter({
  name: 'webhook_signature_failures_total',
  help: 'Provider webhooks refused for their signature (missing, malformed, stale, mismatch): security events.',
  labelNames: ['provider', 'reason'] as const,
  registers: [registry],
});

export const webhookDeadLetters = new Gauge({
  name: 'deposit_webhook_dead_letters',
  help: 'Provider webhooks waiting in the dead-letter queue for an operator to replay them.',
  registers: [registry],
});
