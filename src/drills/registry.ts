import { compromisedAdminDrill } from './compromised-admin.ts';
import { dbFailoverDrill } from './db-failover.ts';
import { depositWatcherStallDrill } from './deposit-watcher-stall.ts';
import { depositWebhookMismatchDrill } from './deposit-webhook-mismatch.ts';
import { disputedReleaseDrill } from './disputed-release.ts';
import { doublePayoutDrill } from './double-payout.ts';
import { escrowLeakDrill } from './escrow-leak.ts';
import type { Drill } from './harness.ts';
import { horizonOutageDrill } from './horizon-outage.ts';
import { jwtKeyRotationDrill } from './jwt-key-rotation.ts';
import { ledgerImbalanceDrill } from './ledger-imbalance.ts';
import { stellarRpcOutageDrill } from './stellar-rpc-outage.ts';
import { stuckStreamSettlementDrill } from './stuck-stream-settlement.ts';
import { stuckTransactionDrill } from './stuck-transaction.ts';
import { workerDeadDrill } from './worker-dead.ts';

/**
 * Every drill, in the order `settledesk drill list` shows them. A new drill is a module
 * `src/drills/<name>.ts` exporting a `Drill`, listed here, with `test/drills/<name>.test.ts`
 * calling it so that `npm test` runs each drill in its own process.
 */
export const drills: readonly Drill[] = [
  dbFailoverDrill,
  jwtKeyRotationDrill,
  compromisedAdminDrill,
  depositWebhookMismatchDrill,
  depositWatcherStallDrill,
  doublePayoutDrill,
  ledgerImbalanceDrill,
  escrowLeakDrill,
  disputedReleaseDrill,
  horizonOutageDrill,
  stellarRpcOutageDrill,
  stuckTransactionDrill,
  stuckStreamSettlementDrill,
  workerDeadDrill,
];

export function findDrill(name: string): Drill | undefined {
  return drills.find((drill) => drill.name === name);
}
