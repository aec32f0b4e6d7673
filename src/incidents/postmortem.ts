import { randomUUID } from 'node:crypto';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import {
  type ActionItemStatus,
  type ActionItemTransition,
  actionItemTransitionBetween,
} from './action-item-states.ts';
import { selectIncident } from './data.ts';
import {
  type ActionItemRow,
  countActionItems,
  countTimelineEvents,
  insertActionItem,
  insertPostmortemIfAbsent,
  type PostmortemParts,
  type PostmortemRow,
  selectActionItem,
  selectActionItemsPage,
  selectPostmortem,
  updateActionItem,
  updatePostmortem,
} from './postmortem-data.ts';
import {
  type Actor,
  appendTimeline,
  getRoles,
  getTimeline,
  type IncidentView,
  incidentView,
  lockIncident,
  type RoleView,
  type TimelineEventView,
  timelinePageMax,
} from './service.ts';

/** Per incident, whatever their status: a postmortem with more is a list, not a plan. */
export const actionItemsMax = 100;
export const actionItemsPageMax = 100;
export const actionItemTitleLengthMax = 300;
export const actionItemOwnerLengthMax = 200;
export const actionItemReasonLengthMax = 500;
export const postmortemPartLengthMax = 10_000;
/** Timeline events the draft renders; an incident with more says how many it left out. */
export const draftEventsMax = 2_000;

export type ActionItemView = {
  id: string;
  incidentId: string;
  title: string;
  owner: string;
  dueOn: string;
  status: ActionItemStatus;
  statusReason: string;
  overdue: boolean;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
};

export type PostmortemView = {
  incidentId: string;
  rootCause: string;
  wentWell: string;
  wentWrong: string;
  lessonsLearned: string;
  createdAt: string;
  updatedBy: string | null;
  updatedAt: string;
};

/** What the draft is made of, read in one snapshot. */
export type PostmortemDraft = {
  incident: IncidentView;
  roles: RoleView[];
  timeline: TimelineEventView[];
  /** Events left out beyond `draftEventsMax`. */
  timelineLeftOut: number;
  postmortem: PostmortemView | null;
  actionItems: ActionItemView[];
  generatedAt: string;
};

export type ActionItemInput = { title: string; owner: string; dueOn: string };
export type ActionItemChange = {
  status?: ActionItemStatus;
  reason?: string;
  title?: string;
  owner?: string;
  dueOn?: string;
};

/** A calendar day `YYYY-MM-DD` that exists (no 2026-02-30). */
export function isCalendarDay(text: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const day = new Date(`${text}T00:00:00.000Z`);
  return !Number.isNaN(day.getTime()) && day.toISOString().slice(0, 10) === text;
}

export function actionItemView(row: ActionItemRow): ActionItemView {
  return {
    id: row.id,
    incidentId: row.incidentId,
    title: row.title,
    owner: row.owner,
    dueOn: row.dueOn,
    status: row.status,
    statusReason: row.statusReason,
    overdue: row.overdue,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function postmortemView(row: PostmortemRow): PostmortemView {
  return {
    incidentId: row.incidentId,
    rootCause: row.rootCause,
    wentWell: row.wentWell,
    wentWrong: row.wentWrong,
    lessonsLearned: row.lessonsLearned,
    createdAt: row.createdAt.toISOString(),
    updatedBy: row.updatedBy,
    updatedAt: row.updatedAt.toISOString(),
  };
}

function itemNotFound(incidentId: string, itemId: string): DomainError {
  return new DomainError(
    'incidents/action-item-not-found',
    `no action item ${itemId} on incident ${incidentId}`,
  );
}

async function requireIncident(db: Executor, id: string): Promise<void> {
  if (!(await selectIncident(db, id))) {
    throw new DomainError('incidents/not-found', `no incident ${id}`);
  }
}

/** Adds an item, open; allowed at any status of the incident (the work outlives the incident). */
export async function addActionItem(
  sql: Sql,
  incidentId: string,
  input: ActionItemInput,
  actor: Actor,
): Promise<ActionItemView> {
  return withTransaction(sql, async (tx) => {
    await lockIncident(tx, incidentId);
    if ((await countActionItems(tx, incidentId)) >= actionItemsMax) {
      throw new DomainError(
        'incidents/action-items-full',
        `incident ${incidentId} has ${actionItemsMax} action items already`,
      );
    }
    const row = await insertActionItem(tx, { id: randomUUID(), incidentId, ...input, createdBy: actor.name });
    await appendTimeline(
      tx,
      incidentId,
      {
        kind: 'action_item_added',
        source: 'person',
        summary: `action item: ${row.title} (owner ${row.owner}, due ${row.dueOn})`,
        detail: { actionItemId: row.id, title: row.title, owner: row.owner, dueOn: row.dueOn },
      },
      actor,
    );
    return actionItemView(row);
  });
}

function transitionFor(
  before: ActionItemRow,
  to: ActionItemStatus | undefined,
): ActionItemTransition | undefined {
  if (to === undefined || to === before.status) return undefined;
  const transition = actionItemTransitionBetween(before.status, to);
  if (!transition) {
    throw new DomainError(
      'incidents/action-item-illegal-transition',
      `an action item cannot move from ${before.status} to ${to}`,
      { status: before.status },
    );
  }
  return transition;
}

/** What changed, field by field, as `field: before → after`; empty when nothing did. */
function changesOf(before: ActionItemRow, after: ActionItemRow): string[] {
  const fields = ['status', 'title', 'owner', 'dueOn'] as const;
  return fields
    .filter((field) => before[field] !== after[field])
    .map((field) => `${field}: ${before[field]} → ${after[field]}`);
}

/**
 * Moves an item through its status machine and/or changes its title, owner or due day. Asking for
 * the status it already has changes nothing; a change that changes nothing appends no event.
 */
export async function changeActionItem(
  sql: Sql,
  incidentId: string,
  itemId: string,
  change: ActionItemChange,
  actor: Actor,
): Promise<ActionItemView> {
  return withTransaction(sql, async (tx) => {
    await lockIncident(tx, incidentId);
    const before = await selectActionItem(tx, incidentId, itemId);
    if (!before) throw itemNotFound(incidentId, itemId);
    const transition = transitionFor(before, change.status);
    const after = await updateActionItem(tx, {
      incidentId,
      itemId,
      transition,
      reason: transition ? change.reason : undefined,
      title: change.title,
      owner: change.owner,
      dueOn: change.dueOn,
    });
    if (!after) {
      throw new DomainError(
        'incidents/action-item-illegal-transition',
        `action item ${itemId} changed meanwhile`,
      );
    }
    const changes = changesOf(before, after);
    if (changes.length === 0) return actionItemView(after);
    await appendTimeline(
      tx,
      incidentId,
      {
        kind: 'action_item_updated',
        source: 'person',
        summary: `action item ${after.title}: ${changes.join('; ')}${transition && change.reason ? ` (${change.reason})` : ''}`,
        detail: {
          actionItemId: itemId,
          transition: transition ?? null,
          reason: change.reason ?? null,
          before: { status: before.status, title: before.title, owner: before.owner, dueOn: before.dueOn },
          after: { status: after.status, title: after.title, owner: after.owner, dueOn: after.dueOn },
        },
      },
      actor,
    );
    return actionItemView(after);
  });
}

export async function listActionItems(
  db: Executor,
  incidentId: string,
  after: { createdAt: Date; id: string } | undefined,
  limit: number,
): Promise<{ rows: ActionItemRow[]; items: ActionItemView[] }> {
  await requireIncident(db, incidentId);
  const rows = await selectActionItemsPage(db, incidentId, after, limit);
  return { rows, items: rows.map(actionItemView) };
}

const partNames: Record<keyof PostmortemParts, string> = {
  rootCause: 'root cause',
  wentWell: 'what went well',
  wentWrong: 'what went wrong',
  lessonsLearned: 'lessons learned',
};

/**
 * Writes parts of the postmortem (others keep their text), creating it on a first edit; one
 * `postmortem_drafted` event names the parts changed and keeps their text before and after.
 */
export async function writePostmortem(
  sql: Sql,
  incidentId: string,
  parts: PostmortemParts,
  actor: Actor,
): Promise<PostmortemView> {
  return withTransaction(sql, async (tx) => {
    await lockIncident(tx, incidentId);
    await insertPostmortemIfAbsent(tx, incidentId);
    const before = await selectPostmortem(tx, incidentId);
    const changed = (Object.keys(partNames) as (keyof PostmortemParts)[]).filter(
      (part) => parts[part] !== undefined && parts[part] !== before?.[part],
    );
    if (before && changed.length === 0) return postmortemView(before);
    const after = await updatePostmortem(tx, incidentId, parts, actor.name);
    await appendTimeline(
      tx,
      incidentId,
      {
        kind: 'postmortem_drafted',
        source: 'person',
        summary: `postmortem: wrote ${changed.map((part) => partNames[part]).join(', ')}`,
        detail: {
          parts: changed,
          before: Object.fromEntries(changed.map((part) => [part, before?.[part] ?? ''])),
          after: Object.fromEntries(changed.map((part) => [part, after[part]])),
        },
      },
      actor,
    );
    return postmortemView(after);
  });
}

/** Every event up to `draftEventsMax`, oldest first, and how many more there are. */
async function draftTimeline(
  db: Executor,
  incidentId: string,
): Promise<{ events: TimelineEventView[]; leftOut: number }> {
  const events: TimelineEventView[] = [];
  let afterId: bigint | undefined;
  for (;;) {
    const page = await getTimeline(db, incidentId, afterId, timelinePageMax);
    events.push(...page);
    const last = page.at(-1);
    if (page.length < timelinePageMax || last === undefined || events.length > draftEventsMax) break;
    afterId = BigInt(last.id);
  }
  if (events.length <= draftEventsMax) return { events, leftOut: 0 };
  const total = await countTimelineEvents(db, incidentId);
  return { events: events.slice(0, draftEventsMax), leftOut: total - draftEventsMax };
}

/** Reads everything the draft shows in one repeatable-read snapshot; writes nothing. */
export async function getPostmortemDraft(sql: Sql, incidentId: string): Promise<PostmortemDraft> {
  return withTransaction(
    sql,
    async (tx) => {
      const incident = await selectIncident(tx, incidentId);
      if (!incident) throw new DomainError('incidents/not-found', `no incident ${incidentId}`);
      const now = new Date();
      const timeline = await draftTimeline(tx, incidentId);
      const postmortem = await selectPostmortem(tx, incidentId);
      const items = await selectActionItemsPage(tx, incidentId, undefined, actionItemsMax);
      return {
        incident: incidentView(incident, now),
        roles: await getRoles(tx, incidentId),
        timeline: timeline.events,
        timelineLeftOut: timeline.leftOut,
        postmortem: postmortem ? postmortemView(postmortem) : null,
        actionItems: items.map(actionItemView),
        generatedAt: now.toISOString(),
      };
    },
    { isolation: 'repeatable read' },
  );
}
