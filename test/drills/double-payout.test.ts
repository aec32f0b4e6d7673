import { describe, expect, it } from 'vitest';
import { doublePayoutDrill } from '../../src/drills/double-payout.ts';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill double-payout (docs/runbooks/double-payout-or-escrow-leak.md)', () => {
  it(
    'detects a settled payout paid again and an unknown payment from the hot wallet, holds money movement with the runbook, and keeps the ledger balanced',
    async () => {
      const report = await runDrill(doublePayoutDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.detectionMs).toBeGreaterThan(0);
      expect(report.figures.lostOnChainMinor).toBe(320_000_000);
      expect(report.figures.openFindings).toBe(1);
      expect(report.figures.closedFindings).toBe(2);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
