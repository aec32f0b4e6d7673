import { describe, expect, inject, it } from 'vitest';
import { type Drill, type DrillReport, drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

export type DrillExpectations = {
  /** What the drill shows, as a sentence: the test's name. */
  does: string;
  /**
   * The drill makes its database on this test run's PostgreSQL server rather than starting a
   * cluster of its own (by default). `false` leaves DATABASE_URL as the run was given it.
   */
  onRunServer?: boolean;
  /** Checks the report's figures; that every step passed is checked for every drill. */
  figures: (figures: DrillReport['figures']) => void;
};

/**
 * The test of one drill: `test/drills/<name>.test.ts` is a file of its own for each drill, so that
 * each runs in its own vitest process.
 */
export function drillTest(drill: Drill, expectations: DrillExpectations): void {
  describe(`drill ${drill.name} (docs/runbooks/${drill.runbook})`, () => {
    it(
      expectations.does,
      async () => {
        if (expectations.onRunServer ?? true) process.env.DATABASE_URL ||= inject('databaseAdminUrl');
        const report = await runDrill(drill, { print: (line) => process.stdout.write(`${line}\n`) });
        expect(report.steps.every((step) => step.ok)).toBe(true);
        expectations.figures(report.figures);
      },
      drillTimeoutMsDefault + cleanupMs,
    );
  });
}
