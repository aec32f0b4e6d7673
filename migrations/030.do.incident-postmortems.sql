-- Post-incident work (src/incidents/postmortem*.ts): action items with an owner and a due date,
-- and the parts of the postmortem a person writes. The draft itself is generated from these, the
-- incident record and its timeline when asked for, and is not stored. Every change here is also
-- a timeline event (and so an audit row) in the same transaction.

create table incident_action_items (
  id uuid primary key,
  incident_id uuid not null references incidents (id),
  title text not null check (length(title) between 1 and 300),
  owner text not null check (length(owner) between 1 and 200),
  -- A calendar day in UTC: the item is overdue from the next day on.
  due_on date not null,
  status text not null check (status in ('open', 'done', 'cancelled')),
  status_reason text not null check (length(status_reason) between 1 and 700),
  created_by text not null check (length(created_by) between 1 and 200),
  created_at timestamptz not null,
  updated_at timestamptz not null check (updated_at >= created_at)
);
create index incident_action_items_by_incident on incident_action_items (incident_id, created_at, id);
-- What incident_action_items_overdue counts at each scrape: only open items, by due day.
create index incident_action_items_open_by_due on incident_action_items (due_on) where status = 'open';

-- One per incident: created (empty) when the incident first moves to resolved, or by the first
-- edit, whichever comes first; never created twice (the primary key).
create table incident_postmortems (
  incident_id uuid primary key references incidents (id),
  root_cause text not null default '' check (length(root_cause) <= 10000),
  went_well text not null default '' check (length(went_well) <= 10000),
  went_wrong text not null default '' check (length(went_wrong) <= 10000),
  lessons_learned text not null default '' check (length(lessons_learned) <= 10000),
  created_at timestamptz not null,
  -- Null until a person writes a part.
  updated_by text check (length(updated_by) between 1 and 200),
  updated_at timestamptz not null check (updated_at >= created_at)
);
