-- Payment proofs submitted by customers: what was checked, and the verdict.
create table payment_proofs (
  id uuid primary key,
  transaction_hash text not null check (transaction_hash ~ '^[0-9a-f]{64}$'),
  account_id uuid not null references accounts (id),
  verdict text not null check (verdict in ('credited', 'already_credited', 'suspicious')),
  reason text,
  deposit_id uuid references deposits (id),
  submitted_by text not null,
  created_at timestamptz not null default now(),
  check ((verdict = 'suspicious') = (reason is not null))
);
create index payment_proofs_hash on payment_proofs (transaction_hash);
