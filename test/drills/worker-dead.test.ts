import { expect } from 'vitest';
import { workerDeadDrill } from '../../src/drills/worker-dead.ts';
import { drillTest } from '../support/drill.ts';

drillTest(workerDeadDrill, {
  does: "detects a stopped and then a killed worker (alert expression, readiness, triage), and after the runbook's restart settles the payouts made meanwhile",
  figures: (figures) => {
    expect(figures.payoutsWhileDead).toBe(2);
    expect(figures.paymentsOnChain).toBe(4);
  },
});
