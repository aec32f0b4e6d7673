import { expect } from 'vitest';
import { dbFailoverDrill } from '../../src/drills/db-failover.ts';
import { drillTest } from '../support/drill.ts';

drillTest(dbFailoverDrill, {
  does: 'promotes the synchronous replica with the runbook after the primary is killed under load, and loses no acknowledged transfer',
  onRunServer: false,
  figures: (figures) => {
    expect(figures.acknowledgedBeforeKill).toBeGreaterThan(0);
    expect(figures.acknowledgedLost).toBe(0);
    expect(figures.firstSuccessAfterKillMs).toBeGreaterThan(0);
  },
});
