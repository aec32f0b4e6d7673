import { expect } from 'vitest';
import { dbFailoverDrill } from '../../src/drills/db-failover.ts';
import { drillTest } from '../support/drill.ts';

drillTest(dbFailoverDrill, {
  does: 'promotes the synchronous replica with the runbook after the primary is killed under load, answers 503 (never 500) meanwhile, runs jobs and delivers a merchant webhook on the new primary in the same worker, loses no acknowledged transfer and still stops within its shutdown timeout',
  onRunServer: false,
  figures: (figures) => {
    expect(figures.acknowledgedBeforeKill).toBeGreaterThan(0);
    expect(figures.acknowledgedLost).toBe(0);
    expect(figures.firstSuccessAfterKillMs).toBeGreaterThan(0);
    expect(figures.sealsAfterFailover).toBeGreaterThan(0);
    expect(figures.detectorRunsAfterFailover).toBeGreaterThan(0);
    expect(figures.webhookDeliveriesAfterFailover).toBe(1);
    expect(figures.webhookReceiverRefused).toBe(0);
    expect(figures.status500).toBe(0);
    expect(figures.heldAfterFailure).toBe(0);
    expect(figures.stopMs).toBeGreaterThanOrEqual(0);
    expect(figures.stopMs).toBeLessThanOrEqual(figures.shutdownTimeoutMs ?? 0);
  },
});
