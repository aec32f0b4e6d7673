-- Users (for suspension), kill switches, and the two-person approval engine.

create table users (
  name text primary key check (length(name) between 1 and 128),
  suspended_at timestamptz,
  suspended_by text,
  suspended_reason text,
  created_at timestamptz not null default now(),
  check ((suspended_at is null) = (suspended_by is null))
);

-- One row: the payments mode and the payout freeze every instance obeys.
create table payment_controls (
  singleton boolean primary key default true check (singleton),
  payments_mode text not null default 'standard' check (payments_mode in ('standard', 'read_only')),
  payouts_frozen boolean not null default false,
  updated_at timestamptz not null default now(),
  updated_by text not null default 'system',
  reason text not null default 'initial state'
);
insert into payment_controls (singleton) values (true);

create table proposals (
  id uuid primary key,
  action text not null check (action ~ '^[a-z_]+\.[a-z_]+$'),
  payload jsonb not null,
  -- sha256 over the canonical JSON of payload: approval and execution are bound to it.
  payload_hash text not null check (payload_hash ~ '^[0-9a-f]{64}$'),
  proposer text not null,
  reason text not null check (length(reason) between 1 and 1000),
  approvals_required int not null default 1 check (approvals_required between 1 and 5),
  state text not null default 'pending'
    check (state in ('pending', 'approved', 'executed', 'rejected', 'expired')),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  decided_at timestamptz,
  executed_at timestamptz,
  result jsonb,
  check (expires_at > created_at),
  check ((state = 'executed') = (executed_at is not null))
);
create index proposals_pending on proposals (created_at) where state = 'pending';

create table proposal_reviews (
  proposal_id uuid not null references proposals (id),
  reviewer text not null,
  decision text not null check (decision in ('approve', 'reject')),
  -- The payload hash the reviewer saw; an approval of anything else is refused.
  payload_hash text not null,
  reason text,
  created_at timestamptz not null default now(),
  -- One review per person per proposal.
  primary key (proposal_id, reviewer)
);

-- Defence in depth for the two-person rule: the code refuses self-approval, and so does the table.
create function proposal_reviews_refuse_self_approval() returns trigger language plpgsql as $$
begin
  if new.decision = 'approve'
     and exists (select 1 from proposals where id = new.proposal_id and proposer = new.reviewer) then
    raise exception 'the proposer of % cannot approve it', new.proposal_id using errcode = 'check_violation';
  end if;
  return new;
end $$;

create trigger proposal_reviews_refuse_self_approval
  before insert on proposal_reviews
  for each row execute function proposal_reviews_refuse_self_approval();

-- Reviews are evidence: never edited or removed.
create function proposal_reviews_immutable() returns trigger language plpgsql as $$
begin
  raise exception 'proposal reviews are append-only' using errcode = 'insufficient_privilege';
end $$;

create trigger proposal_reviews_immutable
  before update or delete on proposal_reviews
  for each row execute function proposal_reviews_immutable();
