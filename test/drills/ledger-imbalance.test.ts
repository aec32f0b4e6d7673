import { expect } from 'vitest';
import { ledgerImbalanceDrill } from '../../src/drills/ledger-imbalance.ts';
import { drillTest } from '../support/drill.ts';

drillTest(ledgerImbalanceDrill, {
  does: 'detects an entry written without its counter-entry, repairs it as the runbook says, reverses it with a two-person adjustment, and restores every balance',
  onRunServer: false,
  figures: (figures) => {
    expect(figures.detectionMs).toBeGreaterThan(0);
    expect(figures.customersRestored).toBe(2);
  },
});
