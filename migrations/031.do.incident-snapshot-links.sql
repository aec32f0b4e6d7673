-- A triage snapshot taken for an incident record (src/incidents) points at it. `incident_ref` keeps
-- the free text callers passed before records existed (drills and runbooks still name incidents
-- that way); a snapshot given an incident's id carries both.

alter table incident_snapshots add column incident_id uuid references incidents (id);
create index incident_snapshots_by_incident_id on incident_snapshots (incident_id, taken_at)
  where incident_id is not null;
