-- A release can go straight to a Stellar address: escrow -> payee in the ledger, then a payout
-- from the payee account through the payouts path, in one transaction (docs/escrow.md).
alter table escrow_movements add column payout_id uuid references payouts (id);
alter table escrow_movements add constraint escrow_movements_payout_is_release
  check (payout_id is null or kind = 'release');
create unique index escrow_movements_payout on escrow_movements (payout_id) where payout_id is not null;

-- A release whose payout is not settled within its threshold is a finding of the escrow detector.
alter table reconciliation_findings drop constraint reconciliation_findings_kind_check;
alter table reconciliation_findings add constraint reconciliation_findings_kind_check
  check (kind in ('ledger_imbalance', 'account_balance_mismatch', 'stuck_settlement', 'double_payout',
                  'unknown_outgoing_payment', 'chain_ledger_drift', 'escrow_leak', 'deposit_mismatch',
                  'stuck_release'));
