-- On-chain deposits into the hot wallet: a memo id per account, the watcher's cursor, and the
-- records it set aside.

create table deposit_memos (
  memo_id bigint generated always as identity (start with 1000) primary key,
  account_id uuid not null unique references accounts (id),
  created_at timestamptz not null default now()
);

create table deposit_watcher (
  singleton boolean primary key default true check (singleton),
  -- Horizon paging token of the last payment handled; moves in the same transaction as its credit.
  cursor bigint not null default 0,
  -- The newest ledger a poll saw, and when it closed: the watcher's lag is now() - this.
  seen_ledger int,
  seen_ledger_closed_at timestamptz,
  updated_at timestamptz not null default now()
);
insert into deposit_watcher (singleton) values (true);

create table deposit_watcher_rejects (
  paging_token bigint primary key,
  reason text not null,
  record jsonb not null,
  created_at timestamptz not null default now()
);
