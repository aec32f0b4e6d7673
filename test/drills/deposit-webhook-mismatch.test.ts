import { describe, expect, inject, it, vi } from 'vitest';
import { depositWebhookMismatchDrill } from '../../src/drills/deposit-webhook-mismatch.ts';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill deposit-webhook-mismatch (docs/runbooks/deposit-webhook-failures.md)', () => {
  it(
    'refuses the mismatched payload and the forgeries, and replays the dead letters with the runbook: one credit per deposit, the ledger balanced',
    async () => {
      // The drill makes its database on the server in DATABASE_URL: the one this run uses.
      vi.stubEnv('DATABASE_URL', inject('databaseAdminUrl'));
      const report = await runDrill(depositWebhookMismatchDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.deadLetters).toBe(2);
      expect(report.figures.signatureFailures).toBeGreaterThan(10);
      expect(report.figures.creditsPerDepositMax).toBe(1);
      expect(report.figures.mismatchesCredited).toBe(0);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
