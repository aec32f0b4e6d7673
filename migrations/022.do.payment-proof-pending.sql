-- A payment proof that no Stellar path could decide (every path down, or none had ingested past the
-- proof's submission) is kept `pending` and re-verified by the verify_payment_proof job, never
-- flagged. The job needs the claim itself, so it is stored: the asset and the amount in minor units
-- (null when the claimed amount is not a 7-decimal amount, which then fails as wrong_amount).
alter table payment_proofs drop constraint payment_proofs_verdict_check;
alter table payment_proofs add constraint payment_proofs_verdict_check
  check (verdict in ('pending', 'credited', 'already_credited', 'suspicious'));
alter table payment_proofs add column asset text;
alter table payment_proofs add column claimed_amount_minor bigint;
alter table payment_proofs add column decided_at timestamptz;
update payment_proofs set decided_at = created_at;
alter table payment_proofs add constraint payment_proofs_pending_has_claim
  check (verdict <> 'pending' or asset is not null);
alter table payment_proofs add constraint payment_proofs_decided
  check ((verdict = 'pending') = (decided_at is null));
create index payment_proofs_pending on payment_proofs (created_at) where verdict = 'pending';
