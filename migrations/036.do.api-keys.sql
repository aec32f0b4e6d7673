-- API keys for integrations (docs/controls.md, "API keys"): long-lived, scoped, revocable bearer keys
-- for services. Only a SHA-256 digest of the key is stored; the key itself is shown once.
create table api_keys (
  id uuid primary key,
  name text not null check (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  -- The role the key's caller gets; staff roles above viewer stay with people (JWTs).
  scope text not null check (scope in ('service', 'viewer')),
  secret_hash bytea not null check (length(secret_hash) = 32),
  created_by text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  -- Written at most once a minute per key and instance (apiKeyLastUsedPrecisionMs, src/platform/auth/api-keys.ts).
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_by text,
  revoked_reason text check (length(revoked_reason) between 1 and 1000),
  check (expires_at > created_at),
  check ((revoked_at is null) = (revoked_by is null)),
  check ((revoked_at is null) = (revoked_reason is null))
);
create index api_keys_usable on api_keys (expires_at) where revoked_at is null;
