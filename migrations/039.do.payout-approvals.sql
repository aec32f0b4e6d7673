-- Large payouts wait for a second admin (pending_approval); payouts not yet submitted can be
-- cancelled (cancelled: refunded, terminal, with its refund journal as final_journal_id).

do $$
declare
  name text;
begin
  for name in
    select conname from pg_constraint
    where conrelid = 'payouts'::regclass and contype = 'c'
      and (pg_get_constraintdef(oid) like '%manual_review%' or pg_get_constraintdef(oid) like '%final_journal_id%')
  loop
    execute format('alter table payouts drop constraint %I', name);
  end loop;
end $$;

alter table payouts
  add constraint payouts_state_check check (
    state in ('pending_approval', 'accepted', 'submitted', 'settled', 'failed', 'manual_review', 'cancelled')
  ),
  add constraint payouts_final_journal_check check (
    (state in ('settled', 'failed', 'cancelled')) = (final_journal_id is not null)
  ),
  -- The proposal a pending_approval payout waits on (approvals), kept once it is decided.
  add column approval_proposal_id uuid references proposals (id);


-- The payout_volume detector sums the last days of payouts of every caller: one index range.
create index payouts_created on payouts (created_at) include (created_by, asset, amount_minor, state);

-- The payout_volume detector and its finding kind (src/reconciliation/payout-volume.ts).
alter table reconciliation_findings drop constraint reconciliation_findings_kind_check;
alter table reconciliation_findings add constraint reconciliation_findings_kind_check
  check (kind in ('ledger_imbalance', 'account_balance_mismatch', 'stuck_settlement', 'double_payout',
                  'unknown_outgoing_payment', 'chain_ledger_drift', 'escrow_leak', 'deposit_mismatch',
                  'stuck_release', 'stream_run_stuck', 'stream_overdue', 'unusual_payout_volume'));
alter table reconciliation_checkpoints drop constraint reconciliation_checkpoints_detector_check;
alter table reconciliation_checkpoints add constraint reconciliation_checkpoints_detector_check
  check (detector in ('ledger_balance', 'account_balances', 'stuck_settlements', 'outgoing_payments',
                      'chain_balance', 'escrow', 'deposits', 'payout_volume'));
insert into reconciliation_checkpoints (detector) values ('payout_volume');
