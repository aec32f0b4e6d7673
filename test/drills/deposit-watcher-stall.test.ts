import { expect } from 'vitest';
import { depositWatcherStallDrill } from '../../src/drills/deposit-watcher-stall.ts';
import { drillTest } from '../support/drill.ts';

drillTest(depositWatcherStallDrill, {
  does: 'detects the stalled watcher when every Horizon stops ingesting, and credits every payment of the stall exactly once after the fix',
  figures: (figures) => {
    expect(figures.stallPayments).toBe(5);
    expect(figures.creditedAfterRecovery).toBe(figures.stallPayments);
    expect(figures.creditsPerPaymentMax).toBe(1);
  },
});
