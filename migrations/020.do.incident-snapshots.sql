-- Triage snapshots: everything the read-only incident endpoints reported at one moment, stored so
-- that an incident keeps the evidence as it was when it was taken. History: never edited.

create table incident_snapshots (
  id uuid primary key,
  incident_ref text check (incident_ref ~ '^[A-Za-z0-9._:-]{1,100}$'),
  taken_by text not null check (length(taken_by) between 1 and 200),
  taken_at timestamptz not null default now(),
  content jsonb not null
);
create index incident_snapshots_by_incident on incident_snapshots (incident_ref, taken_at);

create function incident_snapshots_immutable() returns trigger language plpgsql as $$
begin
  raise exception 'incident_snapshots is append-only' using errcode = 'insufficient_privilege';
end $$;
create trigger incident_snapshots_immutable before update or delete on incident_snapshots
  for each row execute function incident_snapshots_immutable();
