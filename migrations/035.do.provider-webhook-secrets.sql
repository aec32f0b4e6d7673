-- Provider webhook secrets live in the database, sealed with the keyring encryption key, so they
-- rotate without a restart (issue 19). The keyring encryption key itself gets versions: every
-- sealed secret names the key version that sealed it, so a job can re-seal under a new key.

create table provider_webhook_secrets (
  id text primary key check (id ~ '^ps_[0-9a-f]{16}$'),
  provider text not null references deposit_providers (name),
  state text not null check (state in ('current', 'verify_only', 'retired')),
  -- AES-256-GCM (iv ‖ tag ‖ ciphertext) under the keyring encryption key named by key_version.
  secret_sealed bytea not null,
  key_version text not null check (key_version ~ '^kv_[0-9a-f]{16}$'),
  created_at timestamptz not null default now(),
  created_by text not null,
  promoted_at timestamptz,
  retired_at timestamptz,
  check ((state = 'retired') = (retired_at is not null))
);

-- At most one secret per provider is the one handed to the provider for signing.
create unique index provider_webhook_secrets_one_current on provider_webhook_secrets (provider)
  where state = 'current';
create index provider_webhook_secrets_by_provider on provider_webhook_secrets (provider, created_at);
create index provider_webhook_secrets_by_key_version on provider_webhook_secrets (key_version);

-- Signing keys sealed before key versions existed have none: they open with any configured key
-- (GCM authenticates, so the wrong key fails) and the re-encryption job gives them one.
alter table signing_keys add column key_version text check (key_version ~ '^kv_[0-9a-f]{16}$');
create index signing_keys_by_key_version on signing_keys (key_version);
