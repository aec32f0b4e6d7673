-- Payouts to Stellar addresses and the attempts that settle them.

create table payouts (
  id uuid primary key,
  source_account_id uuid not null references accounts (id),
  asset text not null references assets (code),
  amount_minor bigint not null check (amount_minor > 0),
  -- A G… account or an M… muxed account.
  destination text not null check (destination ~ '^[GM][A-Z2-7]{55}([A-Z2-7]{13})?$'),
  memo_type text not null check (memo_type in ('none', 'text', 'id', 'hash', 'return')),
  memo_value text check (length(memo_value) <= 64),
  state text not null check (state in ('accepted', 'submitted', 'settled', 'failed', 'manual_review')),
  state_reason text not null,
  created_by text not null,
  request_id text,
  accept_journal_id uuid not null references journal_transactions (id),
  -- The journal transaction that settled or refunded it; set exactly when terminal.
  final_journal_id uuid references journal_transactions (id) deferrable initially deferred,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((state in ('settled', 'failed')) = (final_journal_id is not null)),
  check ((memo_type = 'none') = (memo_value is null))
);
create index payouts_ready on payouts (created_at, id) where state = 'accepted';
create index payouts_by_state on payouts (state, created_at, id);
create index payouts_by_source on payouts (source_account_id, created_at, id);

create table payout_state_history (
  id bigserial primary key,
  payout_id uuid not null references payouts (id),
  from_state text,
  to_state text not null,
  reason text not null,
  actor text not null,
  attempt_id uuid,
  at timestamptz not null default now()
);
create index payout_state_history_payout on payout_state_history (payout_id, id);

-- The hot wallet's channel accounts: a channel carries at most one live attempt, and the next
-- sequence number it will use is remembered so that a stale Horizon cannot make us reuse one.
create table payout_channels (
  account_id text primary key check (account_id ~ '^G[A-Z2-7]{55}$'),
  next_sequence bigint,
  live_attempt_id uuid,
  updated_at timestamptz not null default now()
);

create table settlement_attempts (
  id uuid primary key,
  channel_account_id text not null references payout_channels (account_id),
  source_sequence bigint not null,
  hash text not null unique check (hash ~ '^[0-9a-f]{64}$'),
  envelope_xdr text not null,
  fee_stroops bigint not null check (fee_stroops > 0),
  -- The validity window: after a closed ledger past either bound, the transaction can never apply.
  max_time bigint not null,
  max_ledger int not null,
  state text not null default 'built'
    check (state in ('built', 'submitted', 'succeeded', 'failed', 'expired', 'abandoned')),
  outcome_reason text,
  result_codes jsonb,
  ledger int,
  submissions int not null default 0,
  created_at timestamptz not null default now(),
  submitted_at timestamptz,
  last_submitted_at timestamptz,
  checked_at timestamptz,
  resolved_at timestamptz,
  check ((state in ('built', 'submitted')) = (resolved_at is null))
);
create index settlement_attempts_live on settlement_attempts (created_at) where state in ('built', 'submitted');

create table settlement_attempt_payouts (
  attempt_id uuid not null references settlement_attempts (id),
  payout_id uuid not null references payouts (id),
  operation_index int not null check (operation_index between 0 and 99),
  live boolean not null default true,
  primary key (attempt_id, payout_id)
);
-- Never two live transactions for one payout: the database refuses a second one.
create unique index settlement_attempt_payouts_one_live on settlement_attempt_payouts (payout_id) where live;
