-- Deposits: providers, the deposits credited (one per provider reference), every inbound webhook
-- (the dead-letter queue is the ones that failed), and security events.

-- Money a provider has received for us and owes us: the offset of a provider deposit's credit.
alter table accounts drop constraint accounts_type_check;
alter table accounts add constraint accounts_type_check
  check (type in ('customer', 'merchant', 'escrow', 'payout_clearing', 'deposit_suspense', 'settlement',
                  'fees', 'deposit_clearing'));
create or replace function ledger_ensure_system_accounts(asset_code text) returns void language sql as $$
  insert into accounts (type, asset)
  select t, asset_code
  from unnest(array['escrow', 'payout_clearing', 'deposit_suspense', 'settlement', 'fees', 'deposit_clearing']) as t
  on conflict do nothing
$$;
select ledger_ensure_system_accounts(code) from assets;

create table deposit_providers (
  name text primary key check (name ~ '^[a-z][a-z0-9_-]{0,39}$'),
  kind text not null check (kind in ('stellar', 'external')),
  mode text not null default 'standard' check (mode in ('standard', 'read_only', 'disabled')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  updated_by text not null default 'system'
);
insert into deposit_providers (name, kind) values ('stellar', 'stellar');

create table deposits (
  id uuid primary key,
  provider text not null references deposit_providers (name),
  reference text not null check (length(reference) between 1 and 200),
  -- sha256 of the canonical payload: the same reference with another payload is refused.
  payload_hash text not null check (payload_hash ~ '^[0-9a-f]{64}$'),
  account_id uuid not null references accounts (id),
  asset text not null references assets (code),
  amount_minor bigint not null check (amount_minor > 0),
  journal_id uuid not null references journal_transactions (id) deferrable initially deferred,
  source text not null check (source in ('webhook', 'chain', 'proof')),
  created_at timestamptz not null default now(),
  unique (provider, reference)
);

create table inbound_webhooks (
  id uuid primary key,
  provider text not null,
  body text not null,
  state text not null check (state in ('processed', 'dead_letter', 'replayed')),
  outcome text,
  error text,
  attempts int not null default 1 check (attempts >= 1),
  received_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index inbound_webhooks_dead_letter on inbound_webhooks (received_at) where state = 'dead_letter';

create table security_events (
  id bigserial primary key,
  kind text not null check (kind ~ '^[a-z_.]+$'),
  source text not null,
  detail jsonb not null,
  created_at timestamptz not null default now()
);
