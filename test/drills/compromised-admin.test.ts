import { describe, expect, inject, it } from 'vitest';
import { compromisedAdminDrill } from '../../src/drills/compromised-admin.ts';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill compromised-admin (docs/runbooks/compromised-admin.md)', () => {
  it(
    'suspends the admin, freezes payouts and rejects their proposal with the runbook, and no money moves',
    async () => {
      // The drill creates its database on the test run's PostgreSQL server rather than starting a cluster.
      process.env.DATABASE_URL ||= inject('databaseAdminUrl');
      const report = await runDrill(compromisedAdminDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.suspensionToRefusedMs).toBeGreaterThanOrEqual(0);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
