import { Counter, Gauge } from 'prom-client';
import { databaseFigures, registry } from '../platform/metrics.ts';
import { selectPendingProofsSummary } from './data.ts';

export const depositWebhooks = new Counter({
  name: 'deposit_webhooks_total',
  help: 'Provider deposit webhooks by provider and outcome (credited, replay, held, mismatch, rejected, dead_letter, unavailable, replayed).',
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

/**
 * Pending payment proofs, counted from the database when scraped (`databaseFigures`: the job may
 * run in a process that serves no metrics).
 */
export const pendingProofsCacheMs = 5_000;
const proofFigures = databaseFigures(
  selectPendingProofsSummary,
  { pending: 0, oldestAgeSeconds: 0 },
  pendingProofsCacheMs,
);

/** Where the pending-proof gauges count from; set by the routes and tasks of this process. */
export const pendingProofsFrom = proofFigures.from;

export const pendingProofs = new Gauge({
  name: 'deposit_proofs_pending',
  help: 'Payment proofs no Stellar path could decide yet, waiting for verify_payment_proof (from the database).',
  registers: [registry],
  async collect() {
    this.set((await proofFigures.current()).pending);
  },
});

export const pendingProofOldestAge = new Gauge({
  name: 'deposit_proofs_pending_oldest_age_seconds',
  help: 'Age of the oldest pending payment proof in seconds, 0 when none (from the database).',
  registers: [registry],
  async collect() {
    this.set((await proofFigures.current()).oldestAgeSeconds);
  },
});
