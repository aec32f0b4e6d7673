import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';
import type { Status } from './states.ts';
import type { ComponentStatus, MessageKind } from './templates.ts';

export type ComponentStatusRow = { component: string; status: ComponentStatus };

export type MessageRow = {
  id: string;
  incidentId: string;
  kind: MessageKind;
  status: Status;
  template: string | null;
  title: string;
  body: string;
  eta: Date | null;
  publishedBy: string;
  publishedAt: Date;
  timelineId: bigint;
  components: ComponentStatusRow[];
};

/** An incident as the public status page shows it: no internal field (title, impact, people). */
export type StatusIncidentRow = { id: string; resolvedAt: Date | null };

const messageColumns = (db: Executor) => db`
  m.id, m.incident_id as "incidentId", m.kind, m.status, m.template, m.title, m.body, m.eta,
  m.published_by as "publishedBy", m.published_at as "publishedAt", m.timeline_id as "timelineId",
  coalesce((select jsonb_agg(jsonb_build_object('component', c.component, 'status', c.status) order by c.component)
    from incident_message_components c where c.message_id = m.id), '[]'::jsonb) as components`;

export async function insertMessage(
  db: Executor,
  input: Omit<MessageRow, 'components' | 'publishedAt'>,
): Promise<{ publishedAt: Date }> {
  const [row] = await db<{ publishedAt: Date }[]>`
    insert into incident_messages (id, incident_id, kind, status, template, title, body, eta, published_by,
      published_at, timeline_id)
    select ${input.id}::uuid, ${input.incidentId}::uuid, ${input.kind}::text, ${input.status}::text,
      ${input.template}::text, ${input.title}::text, ${input.body}::text, ${input.eta}::timestamptz,
      ${input.publishedBy}::text, t.at, t.id
    from incident_timeline t where t.id = ${input.timelineId}::int8
    returning published_at as "publishedAt"`;
  assert(row, 'message insert found no timeline event to publish with');
  return row;
}

export async function insertMessageComponents(
  db: Executor,
  messageId: string,
  components: readonly ComponentStatusRow[],
): Promise<void> {
  if (components.length === 0) return;
  await db`
    insert into incident_message_components (message_id, component, status)
    select ${messageId}::uuid, component, status
    from unnest(${components.map((c) => c.component)}::text[], ${components.map((c) => c.status)}::text[])
      as given (component, status)`;
}

export async function selectMessage(db: Executor, id: string): Promise<MessageRow | undefined> {
  const [row] = await db<MessageRow[]>`
    select ${messageColumns(db)} from incident_messages m where m.id = ${id}::uuid`;
  return row;
}

/** An incident's messages, newest first, keyset-paged on (published_at, id). */
export async function selectMessagesPage(
  db: Executor,
  incidentId: string,
  after: { createdAt: Date; id: string } | undefined,
  limit: number,
): Promise<MessageRow[]> {
  return db<MessageRow[]>`
    select ${messageColumns(db)} from incident_messages m
    where m.incident_id = ${incidentId}::uuid
      and (${after?.createdAt ?? null}::timestamptz is null
           or (m.published_at, m.id) < (${after?.createdAt ?? null}::timestamptz, ${after?.id ?? null}::uuid))
    order by m.published_at desc, m.id desc
    limit ${limit}::int`;
}

/**
 * The incidents the status page shows: those with a published status-page message that are open
 * or were resolved within `resolvedWithinSeconds`; open ones first, then newest first.
 */
export async function selectStatusIncidents(
  db: Executor,
  resolvedWithinSeconds: number,
  limit: number,
): Promise<StatusIncidentRow[]> {
  return db<StatusIncidentRow[]>`
    select i.id, i.resolved_at as "resolvedAt" from incidents i
    where exists (select from incident_messages m where m.incident_id = i.id and m.kind = 'status_page')
      and (i.status <> 'resolved' or i.resolved_at > now() - make_interval(secs => ${resolvedWithinSeconds}::int))
    order by (i.status = 'resolved'), i.declared_at desc, i.id desc
    limit ${limit}::int`;
}

/** The newest status-page messages of each incident, at most `perIncident` each, newest first. */
export async function selectStatusMessages(
  db: Executor,
  incidentIds: readonly string[],
  perIncident: number,
): Promise<MessageRow[]> {
  return db<MessageRow[]>`
    select ${messageColumns(db)}
    from unnest(${incidentIds as string[]}::uuid[]) with ordinality as shown (id, position)
    cross join lateral (
      select * from incident_messages m
      where m.incident_id = shown.id and m.kind = 'status_page'
      order by m.published_at desc, m.id desc
      limit ${perIncident}::int
    ) m
    order by shown.position, m.published_at desc, m.id desc`;
}
