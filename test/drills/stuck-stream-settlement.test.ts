import { expect } from 'vitest';
import { stuckStreamSettlementDrill } from '../../src/drills/stuck-stream-settlement.ts';
import { drillTest } from '../support/drill.ts';

drillTest(stuckStreamSettlementDrill, {
  does: 'a stream settlement run crashes midway with ledgers frozen; detection, triage and the runbook re-run it; every stream is paid what accrued, once',
  figures: (figures) => {
    expect(figures.findingKindsFiring).toBeGreaterThan(0);
    expect(figures.streamsPaidOnce).toBe(4);
  },
});
