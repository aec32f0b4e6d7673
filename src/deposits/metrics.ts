import { Counter, Gauge } from 'prom-client';
import type { Executor } from '../platform/db/types.ts';
import { registry } from '../platform/metrics.ts';
import { selectPendingProofsSummary } from './data.ts';

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

/**
 * Pending payment proofs, counted from the database at scrape time (as the merchant webhook
 * gauges are, src/webhooks/metrics.ts, for the same reasons: the job may run in a process that
 * serves no metrics). A scrape within `pendingProofsCacheMs` of the last reuses its count; if the
 * count fails, the last value stays.
 */
export const pendingProofsCacheMs = 5_000;
let proofSource: Executor | undefined;
let proofCounts: { at: number; summary: Promise<PendingSummary> } | undefined;
type PendingSummary = { pending: number; oldestAgeSeconds: number };
let lastProofSummary: PendingSummary = { pending: 0, oldestAgeSeconds: 0 };

/** Where the pending-proof gauges count from; set by the routes and tasks of this process. */
export function pendingProofsFrom(db: Executor): void {
  proofSource = db;
  proofCounts = undefined;
}

async function pendingSummary(): Promise<PendingSummary> {
  if (proofSource === undefined) return lastProofSummary;
  const now = Date.now();
  if (proofCounts === undefined || now - proofCounts.at > pendingProofsCacheMs) {
    proofCounts = {
      at: now,
      summary: selectPendingProofsSummary(proofSource).then(
        (summary) => {
          lastProofSummary = summary;
          return summary;
        },
        () => lastProofSummary,
      ),
    };
  }
  return proofCounts.summary;
}

export const pendingProofs = new Gauge({
  name: 'deposit_proofs_pending',
  help: 'Payment proofs no Stellar path could decide yet, waiting for verify_payment_proof (from the database).',
  registers: [registry],
  async collect() {
    this.set((await pendingSummary()).pending);
  },
});

export const pendingProofOldestAge = new Gauge({
  name: 'deposit_proofs_pending_oldest_age_seconds',
  help: 'Age of the oldest pending payment proof in seconds, 0 when none (from the database).',
  registers: [registry],
  async collect() {
    this.set((await pendingSummary()).oldestAgeSeconds);
  },
});
