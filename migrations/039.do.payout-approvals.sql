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

