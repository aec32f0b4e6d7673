import { describe, expect, inject, it } from 'vitest';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';
import { horizonOutageDrill } from '../../src/drills/horizon-outage.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill horizon-outage (docs/runbooks/horizon-outage.md)', () => {
  it(
    'fails over from a downed Horizon, makes payouts wait through a hard-down, and settles every payout exactly once after the two-person unfreeze',
    async () => {
      // The drill creates its database on the test run's PostgreSQL server rather than starting a cluster.
      process.env.DATABASE_URL ||= inject('databaseAdminUrl');
      const report = await runDrill(horizonOutageDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.failoverDetectionMs).toBeGreaterThanOrEqual(0);
      expect(report.figures.hardDownDetectionMs).toBeGreaterThanOrEqual(0);
      expect(report.figures.flowPayouts).toBeGreaterThan(0);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
