import { expect } from 'vitest';
import { depositWebhookMismatchDrill } from '../../src/drills/deposit-webhook-mismatch.ts';
import { drillTest } from '../support/drill.ts';

drillTest(depositWebhookMismatchDrill, {
  does: 'refuses the mismatched payload and the forgeries, dead-letters a deposit to an unknown account, and credits the webhooks deferred in read_only on the retry: one credit per deposit, the ledger balanced',
  figures: (figures) => {
    expect(figures.deadLetters).toBe(1);
    expect(figures.deferredRetried).toBe(2);
    expect(figures.signatureFailures).toBeGreaterThan(10);
    expect(figures.creditsPerDepositMax).toBe(1);
    expect(figures.mismatchesCredited).toBe(0);
  },
});
