-- Double-entry ledger: assets, accounts with a current balance, immutable journal and entries.

create table assets (
  code text primary key check (code = 'XLM' or code ~ '^[A-Za-z0-9]{1,12}:G[A-Z2-7]{55}$'),
  precision int not null default 7 check (precision between 0 and 18),
  created_at timestamptz not null default now()
);
insert into assets (code) values ('XLM');

create table accounts (
  id uuid primary key default gen_random_uuid(),
  type text not null check (type in ('customer', 'merchant', 'escrow', 'payout_clearing',
                                     'deposit_suspense', 'settlement', 'fees')),
  asset text not null references assets (code),
  owner_ref text check (length(owner_ref) <= 200),
  status text not null default 'active' check (status in ('active', 'closed')),
  balance_minor bigint not null default 0,
  created_at timestamptz not null default now(),
  -- Customer and merchant money can never go below zero: the database refuses it, whatever the code does.
  constraint accounts_customer_balance_non_negative
    check (type not in ('customer', 'merchant') or balance_minor >= 0)
);
-- One system account of each type per asset.
create unique index accounts_system_per_asset on accounts (type, asset)
  where type not in ('customer', 'merchant');

create table journal_transactions (
  id uuid primary key,
  kind text not null check (kind ~ '^[a-z_]+$'),
  reference text,
  reverses_id uuid references journal_transactions (id),
  request_id text,
  created_at timestamptz not null default now()
);

create table entries (
  id bigserial primary key,
  journal_id uuid not null references journal_transactions (id),
  account_id uuid not null references accounts (id),
  asset text not null references assets (code),
  amount_minor bigint not null check (amount_minor <> 0),
  created_at timestamptz not null default now()
);
create index entries_account on entries (account_id, id);
create index entries_journal on entries (journal_id);

-- Entries and journal transactions are history: a correction is a new, reversing transaction.
create function ledger_immutable() returns trigger language plpgsql as $$
begin
  raise exception '% is immutable: post a reversing transaction instead', tg_table_name
    using errcode = 'insufficient_privilege';
end $$;
create trigger entries_immutable before update or delete on entries
  for each row execute function ledger_immutable();
create trigger entries_no_truncate before truncate on entries
  for each statement execute function ledger_immutable();
create trigger journal_transactions_immutable before update or delete on journal_transactions
  for each row execute function ledger_immutable();
create trigger journal_transactions_no_truncate before truncate on journal_transactions
  for each statement execute function ledger_immutable();

-- At commit, every journal transaction touched has two or more entries, each in its account's
-- asset, summing to zero per asset. Deferred, so the entries of one posting are checked together.
create function ledger_check_journal() returns trigger language plpgsql as $$
declare
  entry_count int;
  wrong_asset int;
  unbalanced text;
begin
  select count(*) into entry_count from entries where journal_id = new.journal_id;
  if entry_count < 2 then
    raise exception 'journal transaction % has % entries; at least 2 are required', new.journal_id, entry_count
      using errcode = 'check_violation';
  end if;
  select count(*) into wrong_asset from entries e join accounts a on a.id = e.account_id
    where e.journal_id = new.journal_id and e.asset <> a.asset;
  if wrong_asset > 0 then
    raise exception 'journal transaction % has entries in a currency other than their account''s', new.journal_id
      using errcode = 'check_violation';
  end if;
  select string_agg(asset, ', ') into unbalanced from (
    select asset from entries where journal_id = new.journal_id group by asset having sum(amount_minor) <> 0
  ) s;
  if unbalanced is not null then
    raise exception 'journal transaction % does not sum to zero in %', new.journal_id, unbalanced
      using errcode = 'check_violation';
  end if;
  return null;
end $$;
create constraint trigger entries_balanced after insert on entries
  deferrable initially deferred
  for each row execute function ledger_check_journal();

-- Idempotently creates the system accounts of an asset.
create function ledger_ensure_system_accounts(asset_code text) returns void language sql as $$
  insert into accounts (type, asset)
  select t, asset_code
  from unnest(array['escrow', 'payout_clearing', 'deposit_suspense', 'settlement', 'fees']) as t
  on conflict do nothing
$$;
select ledger_ensure_system_accounts('XLM');

-- Idempotency keys for every money-moving POST (see src/idempotency).
create table idempotency_keys (
  caller text not null,
  key text not null check (length(key) between 1 and 255),
  fingerprint text not null,
  state text not null check (state in ('in_flight', 'completed')),
  status_code int,
  -- The exact bytes sent the first time, so a replay is identical to the letter.
  response_body text,
  reserved_at timestamptz not null default now(),
  completed_at timestamptz,
  primary key (caller, key),
  check ((state = 'completed') = (status_code is not null))
);
create index idempotency_keys_age on idempotency_keys (reserved_at);
