import { expect } from 'vitest';
import { doublePayoutDrill } from '../../src/drills/double-payout.ts';
import { drillTest } from '../support/drill.ts';

drillTest(doublePayoutDrill, {
  does: 'detects a settled payout paid again and an unknown payment from the hot wallet, holds money movement with the runbook, and keeps the ledger balanced',
  onRunServer: false,
  figures: (figures) => {
    expect(figures.detectionMs).toBeGreaterThan(0);
    expect(figures.lostOnChainMinor).toBe(320_000_000);
    expect(figures.openFindings).toBe(1);
    expect(figures.closedFindings).toBe(2);
  },
});
