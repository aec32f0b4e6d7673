-- Signed checkpoints of the audit chain head (docs/controls.md#the-audit-log-settledesk-audit-verify).
--
-- A walk of the chain cannot see rows removed from its end. Every minute the `audit_checkpoint`
-- job writes the head (chain_position, hash) with an HMAC-SHA256 under the keyring's current
-- signing key (`kid`); `settledesk audit verify` checks the chain against the highest checkpoint
-- and names the missing positions when the chain ends before it. Append-only like audit_log.

create table audit_checkpoints (
  id bigserial primary key,
  created_at timestamptz not null default now(),
  chain_position bigint not null unique check (chain_position > 0),
  hash text not null check (hash ~ '^[0-9a-f]{64}$'),
  kid text not null,
  mac text not null check (mac ~ '^[0-9a-f]{64}$')
);

create function audit_checkpoints_append_only() returns trigger language plpgsql as $$
begin
  raise exception 'audit_checkpoints is append-only' using errcode = 'insufficient_privilege';
end $$;

create trigger audit_checkpoints_append_only
  before update or delete on audit_checkpoints
  for each row execute function audit_checkpoints_append_only();

create trigger audit_checkpoints_no_truncate
  before truncate on audit_checkpoints
  for each statement execute function audit_checkpoints_append_only();
