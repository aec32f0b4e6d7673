-- Alertmanager intake (src/incidents/alertmanager.ts). A notification group is keyed by
-- (receiver, group_key) and holds the incident its alerts go to; its row is the lock two
-- deliveries of one group take, so they cannot open two incidents. Each alert state seen is kept
-- once, keyed by (fingerprint, starts_at, status): repeats find their row and change nothing.

create table alertmanager_groups (
  receiver text not null check (length(receiver) between 1 and 200),
  group_key text not null check (length(group_key) between 1 and 4000),
  -- The incident new firing alerts of the group go to; replaced when a person resolved it.
  incident_id uuid references incidents (id),
  -- The last truncatedAlerts count recorded, so a repeated notification records nothing new.
  truncated_alerts integer not null default 0 check (truncated_alerts >= 0),
  created_at timestamptz not null,
  updated_at timestamptz not null check (updated_at >= created_at),
  primary key (receiver, group_key)
);
create index alertmanager_groups_by_incident on alertmanager_groups (incident_id);

create table alertmanager_alerts (
  receiver text not null,
  group_key text not null,
  fingerprint text not null check (length(fingerprint) between 1 and 64),
  starts_at timestamptz not null,
  status text not null check (status in ('firing', 'resolved')),
  alertname text not null check (length(alertname) <= 200),
  -- Null for a resolved alert never seen firing: kept so that a late firing of it is known stale.
  incident_id uuid references incidents (id),
  received_at timestamptz not null,
  primary key (receiver, group_key, fingerprint, starts_at, status),
  foreign key (receiver, group_key) references alertmanager_groups (receiver, group_key)
);
create index alertmanager_alerts_by_incident on alertmanager_alerts (incident_id) where incident_id is not null;
