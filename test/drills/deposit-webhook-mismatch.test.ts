import { expect } from 'vitest';
import { depositWebhookMismatchDrill } from '../../src/drills/deposit-webhook-mismatch.ts';
import { drillTest } from '../support/drill.ts';

drillTest(depositWebhookMismatchDrill, {
  does: 'refuses the mismatched payload and the forgeries, and replays the dead letters with the runbook: one credit per deposit, the ledger balanced',
  figures: (figures) => {
    expect(figures.deadLetters).toBe(2);
    expect(figures.signatureFailures).toBeGreaterThan(10);
    expect(figures.creditsPerDepositMax).toBe(1);
    expect(figures.mismatchesCredited).toBe(0);
  },
});
