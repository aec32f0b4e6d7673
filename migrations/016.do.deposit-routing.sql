-- Deposit intents and provider routing: a default provider, and a share of new intents (a
-- cohort, by account) routed to another provider. Every change is kept, so a rollback restores
-- the previous one.

create table deposit_routing (
  singleton boolean primary key default true check (singleton),
  default_provider text not null references deposit_providers (name),
  cohort_provider text references deposit_providers (name),
  cohort_percent int not null default 0 check (cohort_percent between 0 and 100),
  updated_at timestamptz not null default now(),
  updated_by text not null default 'system',
  reason text not null default 'initial routing',
  check ((cohort_provider is null) = (cohort_percent = 0))
);
insert into deposit_routing (default_provider) values ('stellar');

create table deposit_routing_history (
  id bigserial primary key,
  default_provider text not null,
  cohort_provider text,
  cohort_percent int not null,
  changed_by text not null,
  reason text not null,
  changed_at timestamptz not null default now()
);
insert into deposit_routing_history (default_provider, cohort_provider, cohort_percent, changed_by, reason)
values ('stellar', null, 0, 'system', 'initial routing');

create table deposit_intents (
  id uuid primary key,
  account_id uuid not null references accounts (id),
  provider text not null references deposit_providers (name),
  -- What the customer pays with: a memo id on the Stellar provider, a reference at an external one.
  memo_id bigint,
  reference text,
  created_by text not null,
  created_at timestamptz not null default now(),
  check ((memo_id is null) <> (reference is null))
);
create index deposit_intents_account on deposit_intents (account_id, created_at);
