-- Append-only audit log with a hash chain.
--
-- Rows are inserted unsealed. A single sealer later chains, in id order, every row whose inserting
-- transaction has finished (txid below the oldest running transaction), so the chain never skips
-- a row that is still about to commit. Chaining at insert time would need one global lock held
-- until commit, serialising every money write in the system behind the audit log.

create table audit_log (
  id bigserial primary key,
  txid xid8 not null default pg_current_xact_id(),
  occurred_at timestamptz not null default now(),
  actor text not null check (length(actor) between 1 and 200),
  action text not null check (length(action) between 1 and 100),
  subject_type text not null,
  subject_id text not null,
  before jsonb,
  after jsonb,
  request_id text,
  chain_position bigint unique,
  prev_hash text,
  hash text,
  check ((hash is null) = (chain_position is null))
);
create index audit_log_unsealed on audit_log (id) where hash is null;
create index audit_log_subject on audit_log (subject_type, subject_id, id);

-- The exact text each row's hash covers. Timestamps are rendered in UTC with microseconds so the
-- input does not depend on the session's time zone; jsonb::text is already canonical.
create function audit_digest_input(a audit_log) returns text language sql immutable as $$
  select concat_ws('|',
    a.id::text,
    to_char(a.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    a.actor, a.action, a.subject_type, a.subject_id,
    coalesce(a.before::text, 'null'), coalesce(a.after::text, 'null'), coalesce(a.request_id, ''))
$$;

-- History cannot be edited or removed. The one allowed update seals a row: it sets the chain
-- columns once and changes nothing else.
create function audit_log_append_only() returns trigger language plpgsql as $$
begin
  if tg_op in ('DELETE', 'TRUNCATE') then
    raise exception 'audit_log is append-only: rows cannot be deleted' using errcode = 'insufficient_privilege';
  end if;
  if old.hash is not null
     or (old.id, old.txid, old.occurred_at, old.actor, old.action, old.subject_type, old.subject_id, old.request_id)
        is distinct from
        (new.id, new.txid, new.occurred_at, new.actor, new.action, new.subject_type, new.subject_id, new.request_id)
     or old.before is distinct from new.before
     or old.after is distinct from new.after then
    raise exception 'audit_log is append-only: rows cannot be changed' using errcode = 'insufficient_privilege';
  end if;
  return new;
end $$;

create trigger audit_log_append_only
  before update or delete on audit_log
  for each row execute function audit_log_append_only();

create trigger audit_log_no_truncate
  before truncate on audit_log
  for each statement execute function audit_log_append_only();
