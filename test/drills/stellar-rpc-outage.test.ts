import { describe, expect, inject, it } from 'vitest';
import { drillTimeoutMsDefault, runDrill } from '../../src/drills/harness.ts';
import { stellarRpcOutageDrill } from '../../src/drills/stellar-rpc-outage.ts';

// The drill bounds itself (drillTimeoutMsDefault) and cleans up after itself; the test allows
// for the cleanup on top.
const cleanupMs = 30_000;

describe('drill stellar-rpc-outage (docs/runbooks/stellar-rpc-outage.md)', () => {
  it(
    'settles through Horizon while RPC is down, makes payouts wait when Horizon fails too, and settles them through RPC alone when it returns',
    async () => {
      // The drill creates its database on the test run's PostgreSQL server rather than starting a cluster.
      process.env.DATABASE_URL ||= inject('databaseAdminUrl');
      const report = await runDrill(stellarRpcOutageDrill, {
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.detectionMs).toBeGreaterThanOrEqual(0);
      expect(report.figures.rpcAloneSettledMs).toBeGreaterThan(0);
      expect(report.figures.payouts).toBe(11);
    },
    drillTimeoutMsDefault + cleanupMs,
  );
});
