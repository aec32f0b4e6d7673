-- Payment streams: an escrow hold released gradually to a recipient (docs/streams.md).

-- A hold a stream owns moves only through the stream: escrow's own routes refuse it. A stream
-- paying a Stellar address names its payer as the hold's payee: each settlement is a release to
-- the payer that leaves at once as a payout from it, so a failed payout returns to the payer.
alter table escrow_holds add column managed_by text check (managed_by in ('stream'));
alter table escrow_holds drop constraint escrow_holds_check1;
alter table escrow_holds add constraint escrow_holds_distinct_parties
  check (payer_account_id <> payee_account_id or managed_by = 'stream');

create table streams (
  id uuid primary key,
  hold_id uuid not null unique references escrow_holds (id),
  payer_account_id uuid not null references accounts (id),
  -- Exactly one recipient: a settledesk account, or a Stellar address paid through payouts.
  recipient_account_id uuid references accounts (id),
  recipient_address text check (recipient_address ~ '^[GM][A-Z2-7]{55}([A-Z2-7]{13})?$'),
  check ((recipient_account_id is null) <> (recipient_address is null)),
  asset text not null references assets (code),
  total_minor bigint not null check (total_minor > 0),
  -- Only what moved is stored; what has accrued is computed from the schedule (src/streams/accrual.ts).
  settled_minor bigint not null default 0 check (settled_minor >= 0),
  refunded_minor bigint not null default 0 check (refunded_minor >= 0),
  check (settled_minor + refunded_minor <= total_minor),
  start_at timestamptz not null,
  cliff_at timestamptz,
  end_at timestamptz not null,
  check (start_at < end_at),
  check (cliff_at is null or (cliff_at >= start_at and cliff_at <= end_at)),
  interval_seconds int not null check (interval_seconds between 60 and 31536000),
  minimum_minor bigint not null check (minimum_minor >= 0),
  check (minimum_minor <= total_minor),
  -- When a run next looks at the stream; null once it is finished.
  next_settlement_at timestamptz,
  cancelled_at timestamptz,
  reference text check (length(reference) <= 200),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  state text not null check (state in ('active', 'completed', 'cancelled')),
  state_reason text not null,
  created_by text not null,
  request_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((state = 'active') = (next_settlement_at is not null)),
  check ((state = 'cancelled') = (cancelled_at is not null)),
  check (state <> 'completed' or (settled_minor = total_minor and refunded_minor = 0)),
  check (state <> 'cancelled' or settled_minor + refunded_minor = total_minor),
  check (state <> 'active' or refunded_minor = 0)
);
create index streams_due on streams (next_settlement_at, id) where state = 'active';
create index streams_by_created on streams (created_at, id);
create index streams_by_payer on streams (payer_account_id, created_at, id);
create index streams_by_recipient on streams (recipient_account_id, created_at, id)
  where recipient_account_id is not null;

-- One row per settlement run: a run that never finishes keeps `running` (a stuck run).
create table stream_settlement_runs (
  id uuid primary key,
  -- The instant the run settled streams as of (its controllable clock).
  as_of timestamptz not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  streams_settled int not null default 0 check (streams_settled >= 0),
  -- Per asset, the minor units paid, as decimal strings: {"XLM": "1234"}.
  amounts jsonb not null default '{}' check (jsonb_typeof(amounts) = 'object'),
  outcome text not null default 'running' check (outcome in ('running', 'succeeded', 'partial', 'failed')),
  error text check (length(error) <= 1000),
  check ((outcome = 'running') = (finished_at is null))
);
create index stream_settlement_runs_by_started on stream_settlement_runs (started_at, id);
create index stream_settlement_runs_running on stream_settlement_runs (started_at) where outcome = 'running';

-- Every amount a stream paid its recipient: by a run (one per period, the unique key that keeps a
-- retried run from paying a period twice) or at its cancellation.
create table stream_settlements (
  id bigserial primary key,
  stream_id uuid not null references streams (id),
  cause text not null check (cause in ('run', 'cancel')),
  run_id uuid references stream_settlement_runs (id),
  period_index int check (period_index >= 0),
  check ((cause = 'run') = (run_id is not null and period_index is not null)),
  amount_minor bigint not null check (amount_minor > 0),
  as_of timestamptz not null,
  journal_id uuid not null references journal_transactions (id),
  payout_id uuid unique references payouts (id),
  created_at timestamptz not null default now(),
  unique (stream_id, period_index)
);
create index stream_settlements_stream on stream_settlements (stream_id, id);
create index stream_settlements_run on stream_settlements (run_id) where run_id is not null;
