import { describe, expect, inject, it, vi } from 'vitest';
import { depositWatcherStallDrill } from '../../src/drills/deposit-watcher-stall.ts';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill deposit-watcher-stall (docs/runbooks/deposit-watcher-stalled.md)', () => {
  it(
    'detects the stalled watcher when every Horizon stops ingesting, and credits every payment of the stall exactly once after the fix',
    async () => {
      // The drill makes its database on the server in DATABASE_URL: the one this run uses.
      vi.stubEnv('DATABASE_URL', inject('databaseAdminUrl'));
      const report = await runDrill(depositWatcherStallDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.stallPayments).toBe(5);
      expect(report.figures.creditedAfterRecovery).toBe(report.figures.stallPayments);
      expect(report.figures.creditsPerPaymentMax).toBe(1);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
