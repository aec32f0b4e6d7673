-- Incident records (src/incidents): the record, its roles with history and its typed, append-only
-- timeline. Every timeline row is also an audit row (appendAudit in the same transaction), so the
-- timeline is covered by the audit chain; this table is the incident's own index of it.

create table incidents (
  id uuid primary key,
  -- What people say out loud: "incident 12". Never reused.
  number bigint generated always as identity unique,
  title text not null check (length(title) between 1 and 200),
  severity text not null check (severity in ('P0', 'P1', 'P2', 'P3')),
  status text not null check (status in ('investigating', 'identified', 'monitoring', 'resolved')),
  status_reason text not null check (length(status_reason) between 1 and 1000),
  components text[] not null default '{}' check (cardinality(components) <= 20),
  impact text not null check (length(impact) <= 2000),
  source text not null check (source in ('person', 'alertmanager')),
  declared_by text not null check (length(declared_by) between 1 and 200),
  declared_at timestamptz not null,
  -- Set once, by the first person to act on it; a person who declares acknowledges at once.
  acknowledged_at timestamptz check (acknowledged_at >= declared_at),
  acknowledged_by text,
  resolved_at timestamptz check (resolved_at >= declared_at),
  reopened_count integer not null default 0 check (reopened_count >= 0),
  updated_at timestamptz not null check (updated_at >= declared_at)
);
create index incidents_by_declared_at on incidents (declared_at, id);
create index incidents_open on incidents (declared_at, id) where status <> 'resolved';

create table incident_roles (
  id bigint generated always as identity primary key,
  incident_id uuid not null references incidents (id),
  role text not null check (role in ('commander', 'communications')),
  subject text not null check (length(subject) between 1 and 200),
  assumed_at timestamptz not null,
  renounced_at timestamptz check (renounced_at >= assumed_at)
);
-- One holder of each role at a time.
create unique index incident_roles_one_holder on incident_roles (incident_id, role) where renounced_at is null;

create table incident_timeline (
  id bigint generated always as identity primary key,
  incident_id uuid not null references incidents (id),
  -- clock_timestamp() under the incident's row lock: never before the previous event's time.
  at timestamptz not null,
  kind text not null check (length(kind) between 1 and 60),
  source text not null check (source in ('person', 'alertmanager', 'system', 'escalation', 'reminder')),
  actor text not null check (length(actor) between 1 and 200),
  summary text not null check (length(summary) between 1 and 2000),
  detail jsonb not null default '{}'
);
create index incident_timeline_by_incident on incident_timeline (incident_id, id);

create function incident_timeline_immutable() returns trigger language plpgsql as $$
begin
  raise exception 'incident_timeline is append-only' using errcode = 'insufficient_privilege';
end $$;
create trigger incident_timeline_immutable before update or delete on incident_timeline
  for each row execute function incident_timeline_immutable();
