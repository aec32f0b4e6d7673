-- Escrow holds: an amount moved from a payer account to the asset's `escrow` account, released to
-- the payee or refunded to the payer, whole or in parts (docs/escrow.md).

create table escrow_holds (
  id uuid primary key,
  payer_account_id uuid not null references accounts (id),
  payee_account_id uuid not null references accounts (id),
  asset text not null references assets (code),
  amount_minor bigint not null check (amount_minor > 0),
  released_minor bigint not null default 0 check (released_minor >= 0),
  refunded_minor bigint not null default 0 check (refunded_minor >= 0),
  -- No release or refund ever moves more than the hold: an over-release cannot be written.
  check (released_minor + refunded_minor <= amount_minor),
  -- Past it the hold behaves as expired on every read and write (the guard is now() < expires_at).
  expires_at timestamptz,
  expiry_outcome text not null default 'refund' check (expiry_outcome in ('refund', 'release')),
  reference text check (length(reference) <= 200),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  state text not null check (state in ('held', 'partially_released', 'disputed', 'closed', 'expired')),
  state_reason text not null,
  created_by text not null,
  request_id text,
  hold_journal_id uuid not null references journal_transactions (id),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (payer_account_id <> payee_account_id),
  -- A hold is finished exactly when nothing remains of it.
  check ((state in ('closed', 'expired')) = (released_minor + refunded_minor = amount_minor))
);
create index escrow_holds_by_created on escrow_holds (created_at, id);
create index escrow_holds_by_payer on escrow_holds (payer_account_id, created_at, id);
create index escrow_holds_by_payee on escrow_holds (payee_account_id, created_at, id);
create index escrow_holds_expiring on escrow_holds (expires_at, id)
  where state in ('held', 'partially_released') and expires_at is not null;
create index escrow_holds_open on escrow_holds (asset) where state in ('held', 'partially_released', 'disputed');

-- Every release and refund of a hold, one journal transaction each.
create table escrow_movements (
  id bigserial primary key,
  hold_id uuid not null references escrow_holds (id),
  kind text not null check (kind in ('release', 'refund')),
  amount_minor bigint not null check (amount_minor > 0),
  cause text not null check (cause in ('request', 'expiry', 'dispute_resolution')),
  journal_id uuid not null references journal_transactions (id),
  created_at timestamptz not null default now()
);
create index escrow_movements_hold on escrow_movements (hold_id, id);

-- At most one dispute per hold: its resolution finishes the hold.
create table escrow_disputes (
  id uuid primary key,
  hold_id uuid not null unique references escrow_holds (id),
  reason text not null check (length(reason) between 1 and 1000),
  evidence_refs text[] not null default '{}' check (cardinality(evidence_refs) <= 20),
  opened_by text not null,
  state text not null default 'open' check (state in ('open', 'resolved')),
  outcome text check (outcome in ('release', 'refund', 'split')),
  proposal_id uuid,
  created_at timestamptz not null default now(),
  resolved_at timestamptz,
  -- When the expiry job found the hold past its expiresAt and left it to the dispute (recorded once).
  expiry_deferred_at timestamptz,
  check ((state = 'resolved') = (outcome is not null and resolved_at is not null))
);
create index escrow_disputes_open on escrow_disputes (created_at, id) where state = 'open';
