import { Counter } from 'prom-client';
import { registry } from '../platform/metrics.ts';

/** What a disputed hold refused: `action` is one of these, so the series stay bounded. */
export type DisputedAttemptAction = 'release' | 'refund' | 'expiry';

/**
 * Incremented each time a disputed hold refuses a release, a refund or its expiry
 * (escrow/hold-disputed), in the transaction that records the attempt (audit row and security
 * event). Any increase alerts (EscrowDisputedReleaseAttempt).
 */
export const escrowDisputedAttempts = new Counter({
  name: 'escrow_disputed_attempts_total',
  help: 'Releases, refunds and expiries refused because the escrow hold is disputed, by action (release, refund, expiry).',
  labelNames: ['action'] as const,
  registers: [registry],
});
