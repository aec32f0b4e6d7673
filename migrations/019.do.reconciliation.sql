-- Reconciliation: what the detectors found, and what each detector remembers between runs so that
-- a run costs what is new, not what is history. See docs/reconciliation.md.

create table reconciliation_findings (
  id uuid primary key default gen_random_uuid(),
  kind text not null check (kind in ('ledger_imbalance', 'account_balance_mismatch', 'stuck_settlement',
                                     'double_payout', 'unknown_outgoing_payment', 'chain_ledger_drift',
                                     'escrow_leak', 'deposit_mismatch')),
  -- The de-duplication key within a kind: an asset, an account id, a payout id, a paging token.
  subject text not null check (length(subject) between 1 and 200),
  evidence jsonb not null,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  resolved_at timestamptz,
  -- Detector runs that saw it.
  occurrences int not null default 1 check (occurrences >= 1),
  check (resolved_at is null or resolved_at >= first_seen_at)
);
-- One open finding per (kind, subject): a run that sees it again updates it.
create unique index reconciliation_findings_one_open on reconciliation_findings (kind, subject)
  where resolved_at is null;
create index reconciliation_findings_open_newest on reconciliation_findings (kind, first_seen_at desc)
  where resolved_at is null;
create index reconciliation_findings_newest on reconciliation_findings (first_seen_at desc);
create index reconciliation_findings_subject on reconciliation_findings (subject);

-- One row per detector: its cursor, whatever else it carries between runs, and a lease so that one
-- process at a time runs it (a lease, not a row lock: some detectors wait on Horizon mid-run).
create table reconciliation_checkpoints (
  detector text primary key check (detector in ('ledger_balance', 'account_balances', 'stuck_settlements',
                                                'outgoing_payments', 'chain_balance', 'escrow', 'deposits')),
  cursor bigint not null default 0,
  -- Bounded small state (baselines, pending drifts, running amounts); never a list that grows.
  state jsonb not null default '{}',
  lease uuid,
  lease_until timestamptz,
  last_success_at timestamptz,
  updated_at timestamptz not null default now()
);
insert into reconciliation_checkpoints (detector)
select unnest(array['ledger_balance', 'account_balances', 'stuck_settlements', 'outgoing_payments',
                    'chain_balance', 'escrow', 'deposits']);

-- Running sums of entries up to the ledger_balance cursor (numeric: an imbalance must be reported,
-- not overflow int8 and stop the detector). No foreign keys here or below: a foreign-key check
-- takes a share lock on the referenced row, so the detector would queue behind every posting that
-- holds an account (or payout) locked, and in its repeatable-read pass fail on rows updated since
-- its snapshot. The keys are copied from rows that exist and are never deleted.
create table reconciliation_asset_totals (
  asset text primary key,
  total_minor numeric not null
);

-- Running sums of entries per account up to the account_balances cursor.
create table reconciliation_account_totals (
  account_id uuid primary key,
  total_minor numeric not null
);

-- Entry ids at or below a detector's cursor that were not visible when it scanned them: a posting
-- still in flight (counted when it commits) or rolled back (dropped after an age limit).
create table reconciliation_entry_gaps (
  detector text not null check (detector in ('ledger_balance', 'account_balances')),
  entry_id bigint not null,
  seen_at timestamptz not null default now(),
  primary key (detector, entry_id)
);
create index reconciliation_entry_gaps_age on reconciliation_entry_gaps (detector, seen_at);

-- Items a time-ordered scan handled within its late-commit window (see src/reconciliation/deposits.ts);
-- purged once they fall behind the window, so it stays as small as the window.
create table reconciliation_seen (
  detector text not null,
  item text not null,
  item_at timestamptz not null,
  primary key (detector, item)
);
create index reconciliation_seen_age on reconciliation_seen (detector, item_at);

-- Each on-chain payment from the hot wallet attributed to a payout: by its transaction (one of the
-- payout's settlement attempts) or by likeness (same destination, asset and amount as a settled
-- payout). Two rows for one payout is a double payout.
create table reconciliation_payout_payments (
  paging_token bigint primary key,
  payout_id uuid not null,
  transaction_hash text not null check (transaction_hash ~ '^[0-9a-f]{64}$'),
  attribution text not null check (attribution in ('attempt', 'likeness')),
  seen_at timestamptz not null default now()
);
create index reconciliation_payout_payments_payout on reconciliation_payout_payments (payout_id);

-- Indexes the incremental scans need on other domains' tables (time-ordered reads of new rows).
create index deposits_created on deposits (created_at, id);
create index inbound_webhooks_updated on inbound_webhooks (updated_at, id);
create index settlement_attempts_succeeded on settlement_attempts (resolved_at, id) where state = 'succeeded';
create index settlement_attempt_payouts_payout on settlement_attempt_payouts (payout_id);
