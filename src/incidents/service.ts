import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { type SnapshotHeadRow, selectSnapshotsOfIncident } from '../ops/data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import {
  acknowledge,
  countTimeline,
  type IncidentFilter,
  type IncidentRow,
  insertIncident,
  insertRole,
  insertTimelineEvent,
  type RoleRow,
  renounceRole,
  selectIncident,
  selectIncidentForUpdate,
  selectIncidentsPage,
  selectOpenIncidentIds,
  selectRoles,
  selectTimeline,
  selectTimelineNewest,
  type TimelineRow,
  updateDetails,
  updateSeverity,
  updateStatus,
} from './data.ts';
import { freezeEscalation } from './escalation-steps.ts';
import { insertPostmortemIfAbsent } from './postmortem-data.ts';
import { type ReminderView, remindersOf } from './reminders.ts';
import {
  type IncidentRole,
  type Severity,
  type Status,
  severityTargets,
  type TimelineKind,
  type TimelineSource,
  transitionBetween,
} from './states.ts';
import { onTimelineEvent } from './timeline-hooks.ts';

export const titleLengthMax = 200;
export const impactLengthMax = 2_000;
export const componentsMax = 20;
export const componentLengthMax = 60;
export const noteLengthMax = 2_000;
export const reasonLengthMax = 500;
export const summaryLengthMax = 2_000;
/** Open incidents an automatic event (a mode change, a proposal) is added to, oldest first. */
export const openIncidentsTouchedMax = 20;
export const timelinePageMax = 500;
/** Events and snapshots an incident's page shows; the rest is paged through its timeline. */
export const timelineRecentMax = 20;
export const snapshotsListedMax = 20;

export type Actor = { name: string; requestId: string | undefined };

export type DeclareInput = {
  title: string;
  severity: Severity;
  components?: readonly string[];
  impact?: string;
};

export type TimelineEventInput = {
  kind: TimelineKind;
  source: TimelineSource;
  summary: string;
  detail?: Record<string, unknown>;
};

type TargetView = { targetSeconds: number; dueAt: string; at: string | null; met: boolean | null };

export type IncidentView = {
  id: string;
  number: number;
  title: string;
  severity: Severity;
  status: Status;
  statusReason: string;
  components: string[];
  impact: string;
  source: 'person' | 'alertmanager';
  declaredBy: string;
  declaredAt: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  resolvedAt: string | null;
  reopenedCount: number;
  updatedAt: string;
  /** Respond (acknowledged) and resolve targets of the current severity; met is null while open and not yet due. */
  targets: { respond: TargetView; resolve: TargetView };
};

export type RoleView = { role: IncidentRole; subject: string; assumedAt: string; renouncedAt: string | null };

export type TimelineEventView = {
  id: string;
  at: string;
  kind: TimelineKind;
  source: TimelineSource;
  actor: string;
  summary: string;
  detail: Record<string, unknown>;
};

function target(declaredAt: Date, targetSeconds: number, at: Date | null, now: Date): TargetView {
  const dueAt = new Date(declaredAt.getTime() + targetSeconds * 1000);
  const met = at ? at <= dueAt : now > dueAt ? false : null;
  return { targetSeconds, dueAt: dueAt.toISOString(), at: at?.toISOString() ?? null, met };
}

export function incidentView(row: IncidentRow, now: Date = new Date()): IncidentView {
  const targets = severityTargets[row.severity];
  return {
    id: row.id,
    number: Number(row.number),
    title: row.title,
    severity: row.severity,
    status: row.status,
    statusReason: row.statusReason,
    components: row.components,
    impact: row.impact,
    source: row.source,
    declaredBy: row.declaredBy,
    declaredAt: row.declaredAt.toISOString(),
    acknowledgedAt: row.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: row.acknowledgedBy,
    resolvedAt: row.resolvedAt?.toISOString() ?? null,
    reopenedCount: row.reopenedCount,
    updatedAt: row.updatedAt.toISOString(),
    targets: {
      respond: target(row.declaredAt, targets.respondSeconds, row.acknowledgedAt, now),
      resolve: target(row.declaredAt, targets.resolveSeconds, row.resolvedAt, now),
    },
  };
}

export function roleView(row: RoleRow): RoleView {
  return {
    role: row.role,
    subject: row.subject,
    assumedAt: row.assumedAt.toISOString(),
    renouncedAt: row.renouncedAt?.toISOString() ?? null,
  };
}

export function timelineEventView(row: TimelineRow): TimelineEventView {
  return {
    id: row.id.toString(),
    at: row.at.toISOString(),
    kind: row.kind,
    source: row.source,
    actor: row.actor,
    summary: row.summary,
    detail: row.detail,
  };
}

export type SnapshotHeadView = {
  id: string;
  incidentRef: string | null;
  incidentId: string | null;
  takenBy: string;
  takenAt: string;
};
export type SnapshotView = SnapshotHeadView & { content: Record<string, unknown> };

export function snapshotHeadView(row: SnapshotHeadRow): SnapshotHeadView {
  return {
    id: row.id,
    incidentRef: row.incidentRef,
    incidentId: row.incidentId,
    takenBy: row.takenBy,
    takenAt: row.takenAt.toISOString(),
  };
}

/** An incident's page: the record, every role term, the newest events and snapshots. */
export type IncidentDetail = {
  incident: IncidentView;
  roles: RoleView[];
  timeline: { count: number; recent: TimelineEventView[] };
  snapshots: SnapshotHeadView[];
  /** Open update reminders, each with its due time and whether it is overdue. */
  reminders: ReminderView[];
};

function notFound(id: string): DomainError {
  return new DomainError('incidents/not-found', `no incident ${id}`);
}

/** Locks the incident (every change and every timeline append takes this lock first). */
export async function lockIncident(tx: Tx, id: string): Promise<IncidentRow> {
  const row = await selectIncidentForUpdate(tx, id);
  if (!row) throw notFound(id);
  return row;
}

function refuseResolved(row: IncidentRow): void {
  if (row.status === 'resolved') {
    throw new DomainError('incidents/resolved', `incident ${row.id} is resolved: reopen it first`);
  }
}

/**
 * Appends one timeline event and its audit row, in the caller's transaction, which already holds
 * the incident's row lock (`lockIncident`). The audit row puts the event in the audit chain.
 */
export async function appendTimeline(
  tx: Tx,
  incidentId: string,
  event: TimelineEventInput,
  actor: Actor,
): Promise<TimelineEventView> {
  const row = await insertTimelineEvent(tx, {
    incidentId,
    kind: event.kind,
    source: event.source,
    actor: actor.name,
    summary: event.summary.slice(0, summaryLengthMax),
    detail: event.detail ?? {},
  });
  await appendAudit(tx, {
    actor: actor.name,
    action: `incident.${event.kind}`,
    subjectType: 'incident',
    subjectId: incidentId,
    after: { timelineId: row.id.toString(), source: event.source, summary: row.summary, detail: row.detail },
    requestId: actor.requestId,
  });
  await onTimelineEvent(tx, incidentId, event.kind, row.detail, actor.name);
  return timelineEventView(row);
}

/**
 * Adds an automatic event (a payments mode change, a proposal, an approval) to every open
 * incident, oldest first and bounded, in the caller's transaction: the event lands with the change
 * that caused it or not at all.
 */
export async function recordOnOpenIncidents(
  tx: Tx,
  event: TimelineEventInput,
  actor: Actor,
): Promise<number> {
  const ids = await selectOpenIncidentIds(tx, openIncidentsTouchedMax);
  let recorded = 0;
  for (const id of ids) {
    const row = await selectIncidentForUpdate(tx, id);
    if (!row || row.status === 'resolved') continue;
    await appendTimeline(tx, id, event, actor);
    recorded += 1;
  }
  return recorded;
}

/**
 * Declares an incident in the caller's transaction: the record and its `declared` event. A person
 * who declares has acknowledged it; an incident opened by an alert waits for a person.
 */
export async function declareIncidentIn(
  tx: Tx,
  input: DeclareInput,
  actor: Actor,
  source: 'person' | 'alertmanager',
): Promise<IncidentRow> {
  const row = await insertIncident(tx, {
    id: randomUUID(),
    title: input.title,
    severity: input.severity,
    components: input.components ?? [],
    impact: input.impact ?? '',
    source,
    declaredBy: actor.name,
    acknowledged: source === 'person',
  });
  await freezeEscalation(tx, row);
  await appendTimeline(
    tx,
    row.id,
    {
      kind: 'declared',
      source: source === 'person' ? 'person' : 'alertmanager',
      summary: `declared ${row.severity}: ${row.title}`,
      detail: { severity: row.severity, components: row.components, impact: row.impact },
    },
    actor,
  );
  return row;
}

export async function declareIncident(sql: Sql, input: DeclareInput, actor: Actor): Promise<IncidentView> {
  const row = await withTransaction(sql, (tx) => declareIncidentIn(tx, input, actor, 'person'));
  return incidentView(row);
}

export async function getIncident(db: Executor, id: string): Promise<IncidentView> {
  const row = await selectIncident(db, id);
  if (!row) throw notFound(id);
  return incidentView(row);
}

export async function listIncidents(
  db: Executor,
  filter: IncidentFilter,
  after: { createdAt: Date; id: string } | undefined,
  limit: number,
): Promise<{ rows: IncidentRow[]; items: IncidentView[] }> {
  const rows = await selectIncidentsPage(db, filter, after, limit);
  const now = new Date();
  return { rows, items: rows.map((row) => incidentView(row, now)) };
}

export async function getIncidentDetail(db: Executor, id: string): Promise<IncidentDetail> {
  const row = await selectIncident(db, id);
  if (!row) throw notFound(id);
  const [roles, count, recent, snapshots, reminders] = await Promise.all([
    selectRoles(db, id),
    countTimeline(db, id),
    selectTimelineNewest(db, id, timelineRecentMax),
    selectSnapshotsOfIncident(db, id, snapshotsListedMax),
    remindersOf(db, id),
  ]);
  return {
    incident: incidentView(row),
    roles: roles.map(roleView),
    timeline: { count, recent: recent.map(timelineEventView) },
    snapshots: snapshots.map(snapshotHeadView),
    reminders,
  };
}

export async function getRoles(db: Executor, id: string): Promise<RoleView[]> {
  return (await selectRoles(db, id)).map(roleView);
}

export async function getTimeline(
  db: Executor,
  id: string,
  afterId: bigint | undefined,
  limit: number,
): Promise<TimelineEventView[]> {
  if (!(await selectIncident(db, id))) throw notFound(id);
  return (await selectTimeline(db, id, afterId, limit)).map(timelineEventView);
}

export async function changeStatus(
  sql: Sql,
  id: string,
  to: Status,
  reason: string | undefined,
  actor: Actor,
): Promise<IncidentView> {
  const row = await withTransaction(sql, async (tx) => {
    const before = await lockIncident(tx, id);
    if (before.status === to) return before;
    const transition = transitionBetween(before.status, to);
    if (!transition) {
      throw new DomainError(
        'incidents/illegal-transition',
        `an incident cannot move from ${before.status} to ${to}`,
        {
          status: before.status,
        },
      );
    }
    const after = await updateStatus(tx, { id, transition, actor: actor.name, detail: reason });
    if (!after)
      throw new DomainError('incidents/illegal-transition', `incident ${id} changed status meanwhile`);
    // The postmortem document is created once, on the first move to resolved (Dispatch's "on the
    // move to stable"); a later resolution finds it.
    if (to === 'resolved') await insertPostmortemIfAbsent(tx, id);
    await appendTimeline(
      tx,
      id,
      {
        kind: 'status_changed',
        source: 'person',
        summary: `${before.status} → ${to}${reason ? `: ${reason}` : ''}`,
        detail: { from: before.status, to, transition, reason: reason ?? null },
      },
      actor,
    );
    return after;
  });
  return incidentView(row);
}

export async function changeSeverity(
  sql: Sql,
  id: string,
  severity: Severity,
  reason: string | undefined,
  actor: Actor,
): Promise<IncidentView> {
  const row = await withTransaction(sql, async (tx) => {
    const before = await lockIncident(tx, id);
    refuseResolved(before);
    if (before.severity === severity) return before;
    const after = await updateSeverity(tx, id, severity);
    await appendTimeline(
      tx,
      id,
      {
        kind: 'severity_changed',
        source: 'person',
        summary: `${before.severity} → ${severity}${reason ? `: ${reason}` : ''}`,
        detail: { from: before.severity, to: severity, reason: reason ?? null },
      },
      actor,
    );
    return after;
  });
  return incidentView(row);
}

export async function changeDetails(
  sql: Sql,
  id: string,
  details: { title?: string; impact?: string; components?: readonly string[] },
  actor: Actor,
): Promise<IncidentView> {
  const row = await withTransaction(sql, async (tx) => {
    const before = await lockIncident(tx, id);
    refuseResolved(before);
    const after = await updateDetails(tx, id, details);
    const changed = Object.keys(details).filter((key) => details[key as keyof typeof details] !== undefined);
    if (changed.length === 0) return after;
    await appendTimeline(
      tx,
      id,
      {
        kind: 'details_changed',
        source: 'person',
        summary: `changed ${changed.join(', ')}`,
        detail: {
          before: { title: before.title, impact: before.impact, components: before.components },
          after: { title: after.title, impact: after.impact, components: after.components },
        },
      },
      actor,
    );
    return after;
  });
  return incidentView(row);
}

export async function acknowledgeIncident(sql: Sql, id: string, actor: Actor): Promise<IncidentView> {
  const row = await withTransaction(sql, async (tx) => {
    await lockIncident(tx, id);
    if (await acknowledge(tx, id, actor.name)) {
      await appendTimeline(
        tx,
        id,
        { kind: 'acknowledged', source: 'person', summary: 'acknowledged' },
        actor,
      );
    }
    const after = await selectIncident(tx, id);
    if (!after) throw notFound(id);
    return after;
  });
  return incidentView(row);
}

/** Ends the current term of a role, if anyone holds it, with its `role_renounced` event. */
async function endRoleTerm(tx: Tx, id: string, role: IncidentRole, actor: Actor): Promise<void> {
  const previous = await renounceRole(tx, id, role);
  if (!previous) return;
  await appendTimeline(
    tx,
    id,
    {
      kind: 'role_renounced',
      source: 'person',
      summary: `${previous} is no longer ${role}`,
      detail: { role, subject: previous },
    },
    actor,
  );
}

/** Gives a role to `subject`, ending the previous holder's term; assuming a role acknowledges. */
export async function assignRole(
  sql: Sql,
  id: string,
  role: IncidentRole,
  subject: string,
  actor: Actor,
): Promise<RoleView[]> {
  return withTransaction(sql, async (tx) => {
    const before = await lockIncident(tx, id);
    refuseResolved(before);
    const current = (await selectRoles(tx, id)).find((row) => row.role === role && row.renouncedAt === null);
    if (current?.subject === subject) return (await selectRoles(tx, id)).map(roleView);
    await endRoleTerm(tx, id, role, actor);
    await insertRole(tx, id, role, subject);
    if (await acknowledge(tx, id, subject)) {
      await appendTimeline(
        tx,
        id,
        { kind: 'acknowledged', source: 'person', summary: `acknowledged by ${subject}` },
        actor,
      );
    }
    await appendTimeline(
      tx,
      id,
      { kind: 'role_assumed', source: 'person', summary: `${subject} is ${role}`, detail: { role, subject } },
      actor,
    );
    return (await selectRoles(tx, id)).map(roleView);
  });
}

export async function renounceIncidentRole(
  sql: Sql,
  id: string,
  role: IncidentRole,
  actor: Actor,
): Promise<RoleView[]> {
  return withTransaction(sql, async (tx) => {
    await lockIncident(tx, id);
    await endRoleTerm(tx, id, role, actor);
    return (await selectRoles(tx, id)).map(roleView);
  });
}

/** A note by hand: allowed on a resolved incident too (the postmortem work goes on). */
export async function addNote(sql: Sql, id: string, text: string, actor: Actor): Promise<TimelineEventView> {
  return withTransaction(sql, async (tx) => {
    await lockIncident(tx, id);
    return appendTimeline(tx, id, { kind: 'note', source: 'person', summary: text }, actor);
  });
}
