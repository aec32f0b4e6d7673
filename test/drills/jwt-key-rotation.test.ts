import { describe, expect, inject, it } from 'vitest';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';
import { jwtKeyRotationDrill } from '../../src/drills/jwt-key-rotation.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill jwt-key-rotation (docs/runbooks/jwt-secret-rotation.md)', () => {
  it(
    'rotates the signing key across two instances without a restart, and refuses tokens of a retired leaked key on both',
    async () => {
      // The drill creates its database on the test run's PostgreSQL server rather than starting a cluster.
      process.env.DATABASE_URL ||= inject('databaseAdminUrl');
      const report = await runDrill(jwtKeyRotationDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.retirementToRefusedMs).toBeGreaterThanOrEqual(0);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
