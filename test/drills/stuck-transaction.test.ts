import { describe, expect, inject, it } from 'vitest';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';
import { stuckTransactionDrill } from '../../src/drills/stuck-transaction.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill stuck-transaction (docs/runbooks/stuck-transaction-recovery.md)', () => {
  it(
    'follows a payout stuck behind frozen ledgers by its hash, and settles it exactly once when ledgers resume, never rebuilt while its window was open',
    async () => {
      // The drill creates its database on the test run's PostgreSQL server rather than starting a cluster.
      process.env.DATABASE_URL ||= inject('databaseAdminUrl');
      const report = await runDrill(stuckTransactionDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.attempts).toBeGreaterThanOrEqual(1);
      expect(report.figures.attempts).toBeLessThanOrEqual(2);
      expect(report.figures.settledAfterResumeMs).toBeGreaterThan(0);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
