import { expect } from 'vitest';
import { stellarRpcOutageDrill } from '../../src/drills/stellar-rpc-outage.ts';
import { drillTest } from '../support/drill.ts';

drillTest(stellarRpcOutageDrill, {
  does: 'settles through Horizon while RPC is down, makes payouts wait when Horizon fails too, and settles them through RPC alone when it returns',
  figures: (figures) => {
    expect(figures.detectionMs).toBeGreaterThanOrEqual(0);
    expect(figures.rpcAloneSettledMs).toBeGreaterThan(0);
    expect(figures.payouts).toBe(11);
  },
});
