import { expect } from 'vitest';
import { stuckTransactionDrill } from '../../src/drills/stuck-transaction.ts';
import { drillTest } from '../support/drill.ts';

drillTest(stuckTransactionDrill, {
  does: 'follows a payout stuck behind frozen ledgers by its hash, and settles it exactly once when ledgers resume, never rebuilt while its window was open',
  figures: (figures) => {
    expect(figures.attempts).toBeGreaterThanOrEqual(1);
    expect(figures.attempts).toBeLessThanOrEqual(2);
    expect(figures.settledAfterResumeMs).toBeGreaterThan(0);
  },
});
