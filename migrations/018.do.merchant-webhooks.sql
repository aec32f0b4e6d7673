-- Outbound webhooks to merchants: the endpoints merchants registered, the events we emitted (in
-- the transaction of the change they describe), one delivery per event and matching endpoint, and
-- every HTTP attempt of a delivery (the delivery log). See docs/webhooks.md.

create table merchant_webhook_endpoints (
  id uuid primary key,
  url text not null check (length(url) between 1 and 2048),
  description text check (length(description) <= 200),
  -- Only events about accounts with this owner_ref; null: events about every account.
  owner_ref text check (length(owner_ref) between 1 and 200),
  event_types text[] not null check (cardinality(event_types) between 1 and 32),
  -- The whsec_ signing secret, AES-256-GCM sealed (src/webhooks/secrets.ts); never readable in clear.
  secret_sealed bytea not null,
  enabled boolean not null default true,
  created_by text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index merchant_webhook_endpoints_enabled on merchant_webhook_endpoints (created_at) where enabled;

create table merchant_webhook_events (
  id uuid primary key,
  type text not null check (type ~ '^[a-z]+\.[a-z_]+$'),
  account_id uuid references accounts (id),
  owner_ref text,
  -- The exact JSON bytes signed and sent on every attempt and replay.
  body text not null,
  created_at timestamptz not null default now()
);
create index merchant_webhook_events_created on merchant_webhook_events (created_at, id);

create table merchant_webhook_deliveries (
  id uuid primary key,
  event_id uuid not null references merchant_webhook_events (id),
  endpoint_id uuid not null references merchant_webhook_endpoints (id),
  status text not null default 'pending' check (status in ('pending', 'delivered', 'dead_lettered')),
  -- Attempts made so far (the attempt number of the last one); a replay starts a new budget at
  -- `budget_from`, so the attempt numbers keep increasing across replays.
  attempts int not null default 0 check (attempts >= 0),
  budget_from int not null default 0 check (budget_from <= attempts),
  next_attempt_at timestamptz not null default now(),
  -- A worker sending it holds the lease; another run of the job skips it until the lease ends.
  lease_token uuid,
  lease_until timestamptz,
  last_error text,
  replays int not null default 0 check (replays >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  delivered_at timestamptz,
  dead_lettered_at timestamptz,
  unique (event_id, endpoint_id),
  check ((status = 'delivered') = (delivered_at is not null)),
  check ((status = 'dead_lettered') = (dead_lettered_at is not null))
);
create index merchant_webhook_deliveries_pending on merchant_webhook_deliveries (next_attempt_at)
  where status = 'pending';
create index merchant_webhook_deliveries_dead on merchant_webhook_deliveries (dead_lettered_at)
  where status = 'dead_lettered';
create index merchant_webhook_deliveries_created on merchant_webhook_deliveries (created_at, id);
create index merchant_webhook_deliveries_endpoint on merchant_webhook_deliveries (endpoint_id, created_at);

create table merchant_webhook_attempts (
  id bigserial primary key,
  delivery_id uuid not null references merchant_webhook_deliveries (id),
  attempt int not null check (attempt >= 1),
  status_code int check (status_code between 100 and 599),
  duration_ms int not null check (duration_ms >= 0),
  error text check (length(error) <= 1000),
  response_body text check (length(response_body) <= 4096),
  attempted_at timestamptz not null default now(),
  unique (delivery_id, attempt)
);
