import { describe, expect, it } from 'vitest';
import { dbFailoverDrill } from '../../src/drills/db-failover.ts';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill db-failover (docs/runbooks/db-failover.md)', () => {
  it(
    'promotes the synchronous replica with the runbook after the primary is killed under load, and loses no acknowledged transfer',
    async () => {
      const report = await runDrill(dbFailoverDrill, { print: (line) => process.stdout.write(`${line}\n`) });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.acknowledgedBeforeKill).toBeGreaterThan(0);
      expect(report.figures.acknowledgedLost).toBe(0);
      expect(report.figures.firstSuccessAfterKillMs).toBeGreaterThan(0);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
