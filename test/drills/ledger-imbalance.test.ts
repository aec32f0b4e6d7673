import { describe, expect, it } from 'vitest';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';
import { ledgerImbalanceDrill } from '../../src/drills/ledger-imbalance.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill ledger-imbalance (docs/runbooks/ledger-imbalance.md)', () => {
  it(
    'detects an entry written without its counter-entry, repairs it as the runbook says, reverses it with a two-person adjustment, and restores every balance',
    async () => {
      const report = await runDrill(ledgerImbalanceDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.detectionMs).toBeGreaterThan(0);
      expect(report.figures.customersRestored).toBe(2);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
