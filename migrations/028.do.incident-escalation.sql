-- Escalation policies and update reminders (src/incidents/escalation*.ts, reminders*.ts;
-- docs/incidents.md "Escalation" and "Update reminders").

-- The escalation policy, one immutable row per version; the newest version is the policy in force.
-- An incident keeps the version it was declared under, so editing the policy never changes it.
create table incident_escalation_policies (
  version bigint generated always as identity primary key,
  -- [{ "severities": ["P0"], "afterSeconds": 1800, "target": "engineering_lead" }, …], in order.
  steps jsonb not null check (jsonb_typeof(steps) = 'array' and jsonb_array_length(steps) <= 20),
  reason text not null check (length(reason) between 1 and 500),
  created_by text not null check (length(created_by) between 1 and 200),
  created_at timestamptz not null default now()
);

create function incident_escalation_policies_immutable() returns trigger language plpgsql as $$
begin
  raise exception 'incident_escalation_policies is append-only' using errcode = 'insufficient_privilege';
end $$;
create trigger incident_escalation_policies_immutable before update or delete on incident_escalation_policies
  for each row execute function incident_escalation_policies_immutable();

-- Seed 004: P0 unresolved 30 min → engineering lead, 1 h → CTO; P1 unresolved 2 h → engineering
-- lead; an outage (P0 or P1) over 4 h → CEO.
insert into incident_escalation_policies (steps, reason, created_by) values (
  '[{"severities": ["P0"], "afterSeconds": 1800, "target": "engineering_lead"},
    {"severities": ["P0"], "afterSeconds": 3600, "target": "cto"},
    {"severities": ["P1"], "afterSeconds": 7200, "target": "engineering_lead"},
    {"severities": ["P0", "P1"], "afterSeconds": 14400, "target": "ceo"}]',
  'shipped default (seed 004)', 'migration 028');

-- The policy version an incident was declared under: severity changes and reopening freeze steps
-- from this version, not from the policy in force.
create table incident_escalations (
  incident_id uuid primary key references incidents (id),
  policy_version bigint not null references incident_escalation_policies (version),
  frozen_at timestamptz not null
);

-- The steps frozen onto an incident. `position` is the step's place in its policy version.
create table incident_escalation_steps (
  id bigint generated always as identity primary key,
  incident_id uuid not null references incidents (id),
  policy_version bigint not null references incident_escalation_policies (version),
  position integer not null check (position between 1 and 20),
  severities text[] not null check (cardinality(severities) between 1 and 4),
  target text not null check (length(target) between 1 and 60),
  after_seconds integer not null check (after_seconds between 60 and 604800),
  due_at timestamptz not null,
  state text not null check (state in ('pending', 'done', 'missed', 'cancelled')),
  state_reason text not null check (length(state_reason) between 1 and 200),
  ran_at timestamptz,
  cancelled_at timestamptz,
  created_at timestamptz not null default now(),
  check ((state in ('done', 'missed')) = (ran_at is not null)),
  check ((state = 'cancelled') = (cancelled_at is not null))
);
-- A step is frozen once per incident unless it was cancelled (a severity change back, a reopen).
create unique index incident_escalation_steps_once on incident_escalation_steps (incident_id, position)
  where state <> 'cancelled';
create index incident_escalation_steps_due on incident_escalation_steps (due_at, incident_id)
  where state = 'pending';
create index incident_escalation_steps_by_incident on incident_escalation_steps (incident_id, id);

-- Update reminders: one row per reminder, open while done_at is null. A recurring reminder (the
-- internal update) is closed and followed by a new row, so each interval keeps its history.
create table incident_reminders (
  id bigint generated always as identity primary key,
  incident_id uuid not null references incidents (id),
  kind text not null check (kind in ('internal_update', 'status_page_update', 'postmortem_meeting')),
  due_at timestamptz not null,
  -- When the runner wrote its reminder_due event: once per reminder.
  notified_at timestamptz,
  done_at timestamptz,
  -- What closed it: the timeline event kind, `by_hand`, `resolved` or `severity_changed`.
  done_reason text check (length(done_reason) between 1 and 60),
  done_by text check (length(done_by) between 1 and 200),
  created_at timestamptz not null default now(),
  check ((done_at is null) = (done_reason is null))
);
create unique index incident_reminders_one_open on incident_reminders (incident_id, kind) where done_at is null;
create index incident_reminders_due on incident_reminders (due_at, incident_id)
  where done_at is null and notified_at is null;
create index incident_reminders_open_by_kind on incident_reminders (kind, due_at) where done_at is null;
create index incident_reminders_by_incident on incident_reminders (incident_id, id);
