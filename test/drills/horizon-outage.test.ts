import { expect } from 'vitest';
import { horizonOutageDrill } from '../../src/drills/horizon-outage.ts';
import { drillTest } from '../support/drill.ts';

drillTest(horizonOutageDrill, {
  does: 'fails over from a downed Horizon, makes payouts wait through a hard-down, and settles every payout exactly once after the two-person unfreeze',
  figures: (figures) => {
    expect(figures.failoverDetectionMs).toBeGreaterThanOrEqual(0);
    expect(figures.hardDownDetectionMs).toBeGreaterThanOrEqual(0);
    expect(figures.flowPayouts).toBeGreaterThan(0);
  },
});
