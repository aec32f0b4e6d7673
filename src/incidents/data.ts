import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';
import {
  type IncidentRole,
  type Severity,
  type Status,
  type TimelineKind,
  type TimelineSource,
  type Transition,
  transitions,
} from './states.ts';

export type IncidentRow = {
  id: string;
  number: bigint;
  title: string;
  severity: Severity;
  status: Status;
  statusReason: string;
  components: string[];
  impact: string;
  source: 'person' | 'alertmanager';
  declaredBy: string;
  declaredAt: Date;
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
  resolvedAt: Date | null;
  reopenedCount: number;
  updatedAt: Date;
};

export type RoleRow = {
  role: IncidentRole;
  subject: string;
  assumedAt: Date;
  renouncedAt: Date | null;
};

export type TimelineRow = {
  id: bigint;
  incidentId: string;
  at: Date;
  kind: TimelineKind;
  source: TimelineSource;
  actor: string;
  summary: string;
  detail: Record<string, unknown>;
};

const incidentColumns = (db: Executor) => db`
  i.id, i.number, i.title, i.severity, i.status, i.status_reason as "statusReason", i.components,
  i.impact, i.source, i.declared_by as "declaredBy", i.declared_at as "declaredAt",
  i.acknowledged_at as "acknowledgedAt", i.acknowledged_by as "acknowledgedBy",
  i.resolved_at as "resolvedAt", i.reopened_count as "reopenedCount", i.updated_at as "updatedAt"`;

export async function insertIncident(
  db: Executor,
  input: {
    id: string;
    title: string;
    severity: Severity;
    components: readonly string[];
    impact: string;
    source: 'person' | 'alertmanager';
    declaredBy: string;
    acknowledged: boolean;
  },
): Promise<IncidentRow> {
  const [row] = await db<IncidentRow[]>`
    insert into incidents as i (id, title, severity, status, status_reason, components, impact, source,
      declared_by, declared_at, acknowledged_at, acknowledged_by, updated_at)
    values (${input.id}::uuid, ${input.title}::text, ${input.severity}::text, 'investigating',
      'declared', ${input.components as string[]}::text[], ${input.impact}::text, ${input.source}::text,
      ${input.declaredBy}::text, now(), case when ${input.acknowledged}::boolean then now() end,
      case when ${input.acknowledged}::boolean then ${input.declaredBy}::text end, now())
    returning ${incidentColumns(db)}`;
  assert(row, 'incident insert returned no row');
  return row;
}

export async function selectIncident(db: Executor, id: string): Promise<IncidentRow | undefined> {
  const [row] = await db<
    IncidentRow[]
  >`select ${incidentColumns(db)} from incidents i where i.id = ${id}::uuid`;
  return row;
}

/** The row lock every change to an incident and every timeline append takes first. */
export async function selectIncidentForUpdate(db: Executor, id: string): Promise<IncidentRow | undefined> {
  const [row] = await db<IncidentRow[]>`
    select ${incidentColumns(db)} from incidents i where i.id = ${id}::uuid for update`;
  return row;
}

export type IncidentFilter = { status?: Status; severity?: Severity; open?: boolean };

/** Newest first, keyset-paged on (declared_at, id). */
export async function selectIncidentsPage(
  db: Executor,
  filter: IncidentFilter,
  after: { createdAt: Date; id: string } | undefined,
  limit: number,
): Promise<IncidentRow[]> {
  return db<IncidentRow[]>`
    select ${incidentColumns(db)} from incidents i
    where (${filter.status ?? null}::text is null or i.status = ${filter.status ?? null}::text)
      and (${filter.severity ?? null}::text is null or i.severity = ${filter.severity ?? null}::text)
      and (${filter.open ?? null}::boolean is null or (i.status <> 'resolved') = ${filter.open ?? null}::boolean)
      and (${after?.createdAt ?? null}::timestamptz is null
           or (i.declared_at, i.id) < (${after?.createdAt ?? null}::timestamptz, ${after?.id ?? null}::uuid))
    order by i.declared_at desc, i.id desc
    limit ${limit}::int`;
}

/** Open incidents, oldest first, bounded: the ones automatic timeline events are added to. */
export async function selectOpenIncidentIds(db: Executor, limit: number): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from incidents where status <> 'resolved' order by declared_at, id limit ${limit}::int`;
  return rows.map((row) => row.id);
}

/** Guarded by the transition's sources; false when the incident was not in one of them. */
export async function updateStatus(
  db: Executor,
  input: { id: string; transition: Transition; actor: string; detail: string | undefined },
): Promise<IncidentRow | undefined> {
  const { from, to, reason } = transitions[input.transition];
  const text = input.detail ? `${reason}: ${input.detail}` : reason;
  const [row] = await db<IncidentRow[]>`
    update incidents i set
      status = ${to}::text, status_reason = ${text}::text,
      resolved_at = case when ${to}::text = 'resolved' then greatest(now(), i.updated_at) end,
      reopened_count = i.reopened_count + case when ${input.transition}::text = 'reopened' then 1 else 0 end,
      acknowledged_at = coalesce(i.acknowledged_at, greatest(now(), i.declared_at)),
      acknowledged_by = coalesce(i.acknowledged_by, ${input.actor}::text),
      updated_at = greatest(now(), i.updated_at)
    where i.id = ${input.id}::uuid and i.status = any(${from as unknown as string[]}::text[])
    returning ${incidentColumns(db)}`;
  return row;
}

export async function updateSeverity(db: Executor, id: string, severity: Severity): Promise<IncidentRow> {
  const [row] = await db<IncidentRow[]>`
    update incidents i set severity = ${severity}::text, updated_at = greatest(now(), i.updated_at)
    where i.id = ${id}::uuid returning ${incidentColumns(db)}`;
  assert(row, 'severity update of a locked incident found no row');
  return row;
}

export async function updateDetails(
  db: Executor,
  id: string,
  details: { title?: string; impact?: string; components?: readonly string[] },
): Promise<IncidentRow> {
  const [row] = await db<IncidentRow[]>`
    update incidents i set
      title = coalesce(${details.title ?? null}::text, i.title),
      impact = coalesce(${details.impact ?? null}::text, i.impact),
      components = coalesce(${(details.components as string[] | undefined) ?? null}::text[], i.components),
      updated_at = greatest(now(), i.updated_at)
    where i.id = ${id}::uuid returning ${incidentColumns(db)}`;
  assert(row, 'details update of a locked incident found no row');
  return row;
}

/** Sets acknowledged_at once; false when it was already set. */
export async function acknowledge(db: Executor, id: string, actor: string): Promise<boolean> {
  const rows = await db`
    update incidents i set acknowledged_at = greatest(now(), i.declared_at), acknowledged_by = ${actor}::text,
      updated_at = greatest(now(), i.updated_at)
    where i.id = ${id}::uuid and i.acknowledged_at is null returning i.id`;
  return rows.length === 1;
}

export async function selectRoles(db: Executor, incidentId: string): Promise<RoleRow[]> {
  return db<RoleRow[]>`
    select role, subject, assumed_at as "assumedAt", renounced_at as "renouncedAt"
    from incident_roles where incident_id = ${incidentId}::uuid order by id`;
}

/** Ends the current holding of a role, if any; returns who held it. */
export async function renounceRole(
  db: Executor,
  incidentId: string,
  role: IncidentRole,
): Promise<string | undefined> {
  const [row] = await db<{ subject: string }[]>`
    update incident_roles set renounced_at = greatest(now(), assumed_at)
    where incident_id = ${incidentId}::uuid and role = ${role}::text and renounced_at is null
    returning subject`;
  return row?.subject;
}

export async function insertRole(
  db: Executor,
  incidentId: string,
  role: IncidentRole,
  subject: string,
): Promise<void> {
  await db`
    insert into incident_roles (incident_id, role, subject, assumed_at)
    values (${incidentId}::uuid, ${role}::text, ${subject}::text, now())`;
}

/**
 * Appends one event. The caller holds the incident's row lock, so `at` (the wall clock, not the
 * transaction's start) is never before the previous event of this incident.
 */
export async function insertTimelineEvent(
  db: Executor,
  event: {
    incidentId: string;
    kind: TimelineKind;
    source: TimelineSource;
    actor: string;
    summary: string;
    detail: Record<string, unknown>;
  },
): Promise<TimelineRow> {
  const [row] = await db<TimelineRow[]>`
    insert into incident_timeline (incident_id, at, kind, source, actor, summary, detail)
    select ${event.incidentId}::uuid,
      greatest(clock_timestamp(), (select max(at) from incident_timeline where incident_id = ${event.incidentId}::uuid)),
      ${event.kind}::text, ${event.source}::text, ${event.actor}::text, ${event.summary}::text,
      ${db.json(event.detail as never)}::jsonb
    returning id, incident_id as "incidentId", at, kind, source, actor, summary, detail`;
  assert(row, 'timeline insert returned no row');
  return row;
}

/** Oldest first, keyset-paged on id. */
export async function selectTimeline(
  db: Executor,
  incidentId: string,
  afterId: bigint | undefined,
  limit: number,
): Promise<TimelineRow[]> {
  return db<TimelineRow[]>`
    select id, incident_id as "incidentId", at, kind, source, actor, summary, detail
    from incident_timeline
    where incident_id = ${incidentId}::uuid and id > ${afterId ?? 0n}::int8
    order by id limit ${limit}::int`;
}

/** The newest `limit` events, returned oldest first: the tail an incident's page shows. */
export async function selectTimelineNewest(
  db: Executor,
  incidentId: string,
  limit: number,
): Promise<TimelineRow[]> {
  return db<TimelineRow[]>`
    select * from (
      select id, incident_id as "incidentId", at, kind, source, actor, summary, detail
      from incident_timeline where incident_id = ${incidentId}::uuid
      order by id desc limit ${limit}::int
    ) newest order by id`;
}

export async function countTimeline(db: Executor, incidentId: string): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from incident_timeline where incident_id = ${incidentId}::uuid`;
  return row?.count ?? 0;
}
