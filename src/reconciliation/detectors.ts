import { accountBalancesDetector } from './account-balances.ts';
import { chainBalanceDetector } from './chain-balance.ts';
import type { Detector } from './context.ts';
import { depositsDetector } from './deposits.ts';
import { escrowDetector } from './escrow.ts';
import type { DetectorName } from './findings.ts';
import { ledgerBalanceDetector } from './ledger-balance.ts';
import { outgoingPaymentsDetector } from './outgoing-payments.ts';
import { payoutVolumeDetector } from './payout-volume.ts';
import { stuckSettlementsDetector } from './stuck-settlements.ts';

/** Every detector, in the order `settledesk reconcile run` runs them. */
export const detectors: Readonly<Record<DetectorName, Detector>> = {
  ledger_balance: ledgerBalanceDetector,
  account_balances: accountBalancesDetector,
  stuck_settlements: stuckSettlementsDetector,
  outgoing_payments: outgoingPaymentsDetector,
  chain_balance: chainBalanceDetector,
  escrow: escrowDetector,
  deposits: depositsDetector,
  payout_volume: payoutVolumeDetector,
};
