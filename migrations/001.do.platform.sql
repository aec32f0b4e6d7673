-- Platform: JWT signing keyring and worker heartbeats.

create table signing_keys (
  kid text primary key check (kid ~ '^[A-Za-z0-9_-]{1,64}$'),
  state text not null check (state in ('current', 'verify_only', 'retired')),
  -- AES-256-GCM (iv ‖ tag ‖ ciphertext) under the keyring encryption key from config.
  secret_sealed bytea not null,
  created_at timestamptz not null default now(),
  promoted_at timestamptz,
  retired_at timestamptz
);

-- At most one key signs new tokens at any time.
create unique index signing_keys_one_current on signing_keys ((true)) where state = 'current';

create table worker_heartbeats (
  worker_id text primary key,
  seen_at timestamptz not null default now()
);
