import { expect } from 'vitest';
import { depositWebhookMismatchDrill } from '../../src/drills/deposit-webhook-mismatch.ts';
import { drillTest } from '../support/drill.ts';

drillTest(depositWebhookMismatchDrill, {
  does: 'refuses the mismatched payload and the forgeries, holds a deposit naming another account than its intent, dead-letters a deposit to a closed account, credits issued references in read_only and defers an unissued one: one credit per deposit, the ledger balanced',
  figures: (figures) => {
    expect(figures.deadLetters).toBe(1);
    expect(figures.creditedInReadOnly).toBe(2);
    expect(figures.deferredRetried).toBe(1);
    expect(figures.held).toBe(2);
    expect(figures.signatureFailures).toBeGreaterThan(10);
    expect(figures.creditsPerDepositMax).toBe(1);
    expect(figures.mismatchesCredited).toBe(0);
  },
});
