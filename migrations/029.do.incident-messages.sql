-- Published incident messages (src/incidents/messages.ts): status-page and customer messages that
-- passed the personal-data check. Only published messages are stored (a preview is never written),
-- and a published message is never edited or removed: a correction is a new message. The public
-- status page (GET /status) reads the status-page ones.

create table incident_messages (
  id uuid primary key,
  incident_id uuid not null references incidents (id),
  kind text not null check (kind in ('status_page', 'customer')),
  status text not null check (status in ('investigating', 'identified', 'monitoring', 'resolved')),
  -- null: free text.
  template text check (length(template) between 1 and 60),
  title text not null check (length(title) between 1 and 200),
  body text not null check (length(body) between 1 and 5000),
  eta timestamptz,
  published_by text not null check (length(published_by) between 1 and 200),
  published_at timestamptz not null,
  -- The message_published event appended with it, in the same transaction.
  timeline_id bigint not null unique references incident_timeline (id)
);
create index incident_messages_by_incident on incident_messages (incident_id, published_at, id);
create index incident_messages_status_page on incident_messages (incident_id, published_at, id)
  where kind = 'status_page';

-- The component statuses a message published: the status page shows, per component, the worst
-- one among the newest status-page messages of open incidents.
create table incident_message_components (
  message_id uuid not null references incident_messages (id),
  component text not null check (length(component) between 1 and 60),
  status text not null check (status in ('operational', 'degraded_performance', 'partial_outage', 'major_outage')),
  primary key (message_id, component)
);

create function incident_messages_immutable() returns trigger language plpgsql as $$
begin
  raise exception '% is immutable once published', tg_table_name using errcode = 'insufficient_privilege';
end $$;
create trigger incident_messages_immutable before update or delete on incident_messages
  for each row execute function incident_messages_immutable();
create trigger incident_message_components_immutable before update or delete on incident_message_components
  for each row execute function incident_messages_immutable();
