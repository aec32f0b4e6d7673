-- Stuck stream settlement (docs/streams.md#stuck-settlement): a run still `running` past
-- STREAM_RUN_STUCK_AFTER_SECONDS is closed as `abandoned` by the stuck_settlements detector (its
-- committed batches stay settled; the next run settles the rest), and is a `stream_run_stuck`
-- finding; an active stream due longer than STREAM_SETTLEMENT_OVERDUE_AFTER_SECONDS is a
-- `stream_overdue` finding.
alter table stream_settlement_runs drop constraint stream_settlement_runs_outcome_check;
alter table stream_settlement_runs add constraint stream_settlement_runs_outcome_check
  check (outcome in ('running', 'succeeded', 'partial', 'failed', 'abandoned'));

alter table reconciliation_findings drop constraint reconciliation_findings_kind_check;
alter table reconciliation_findings add constraint reconciliation_findings_kind_check
  check (kind in ('ledger_imbalance', 'account_balance_mismatch', 'stuck_settlement', 'double_payout',
                  'unknown_outgoing_payment', 'chain_ledger_drift', 'escrow_leak', 'deposit_mismatch',
                  'stuck_release', 'stream_run_stuck', 'stream_overdue'));
