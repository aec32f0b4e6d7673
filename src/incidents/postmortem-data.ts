import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';
import {
  type ActionItemStatus,
  type ActionItemTransition,
  actionItemAddedReason,
  actionItemTransitions,
} from './action-item-states.ts';

export type ActionItemRow = {
  id: string;
  incidentId: string;
  title: string;
  owner: string;
  /** `YYYY-MM-DD`, a day in UTC. */
  dueOn: string;
  status: ActionItemStatus;
  statusReason: string;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  /** Open and due before today (UTC), as incident_action_items_overdue counts it. */
  overdue: boolean;
};

export type PostmortemRow = {
  incidentId: string;
  rootCause: string;
  wentWell: string;
  wentWrong: string;
  lessonsLearned: string;
  createdAt: Date;
  updatedBy: string | null;
  updatedAt: Date;
};

/** The parts of a postmortem a person writes, by their column. */
export type PostmortemParts = {
  rootCause?: string;
  wentWell?: string;
  wentWrong?: string;
  lessonsLearned?: string;
};

const actionItemColumns = (db: Executor) => db`
  a.id, a.incident_id as "incidentId", a.title, a.owner, a.due_on::text as "dueOn", a.status,
  a.status_reason as "statusReason", a.created_by as "createdBy", a.created_at as "createdAt",
  a.updated_at as "updatedAt",
  (a.status = 'open' and a.due_on < (now() at time zone 'UTC')::date) as overdue`;

export async function insertActionItem(
  db: Executor,
  input: { id: string; incidentId: string; title: string; owner: string; dueOn: string; createdBy: string },
): Promise<ActionItemRow> {
  const [row] = await db<ActionItemRow[]>`
    insert into incident_action_items as a (id, incident_id, title, owner, due_on, status, status_reason,
      created_by, created_at, updated_at)
    values (${input.id}::uuid, ${input.incidentId}::uuid, ${input.title}::text, ${input.owner}::text,
      ${input.dueOn}::date, 'open', ${actionItemAddedReason}::text, ${input.createdBy}::text, now(), now())
    returning ${actionItemColumns(db)}`;
  assert(row, 'action item insert returned no row');
  return row;
}

export async function countActionItems(db: Executor, incidentId: string): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from incident_action_items where incident_id = ${incidentId}::uuid`;
  return row?.count ?? 0;
}

export async function selectActionItem(
  db: Executor,
  incidentId: string,
  itemId: string,
): Promise<ActionItemRow | undefined> {
  const [row] = await db<ActionItemRow[]>`
    select ${actionItemColumns(db)} from incident_action_items a
    where a.incident_id = ${incidentId}::uuid and a.id = ${itemId}::uuid`;
  return row;
}

/** Oldest first, keyset-paged on (created_at, id). */
export async function selectActionItemsPage(
  db: Executor,
  incidentId: string,
  after: { createdAt: Date; id: string } | undefined,
  limit: number,
): Promise<ActionItemRow[]> {
  return db<ActionItemRow[]>`
    select ${actionItemColumns(db)} from incident_action_items a
    where a.incident_id = ${incidentId}::uuid
      and (${after?.createdAt ?? null}::timestamptz is null
           or (a.created_at, a.id) > (${after?.createdAt ?? null}::timestamptz, ${after?.id ?? null}::uuid))
    order by a.created_at, a.id
    limit ${limit}::int`;
}

/**
 * Changes an item's fields and, with a transition, its status, guarded by the transition's
 * sources; undefined when the item was not in one of them.
 */
export async function updateActionItem(
  db: Executor,
  input: {
    incidentId: string;
    itemId: string;
    transition: ActionItemTransition | undefined;
    reason: string | undefined;
    title: string | undefined;
    owner: string | undefined;
    dueOn: string | undefined;
  },
): Promise<ActionItemRow | undefined> {
  const transition = input.transition ? actionItemTransitions[input.transition] : undefined;
  const from: readonly string[] | null = transition ? transition.from : null;
  const statusReason = transition
    ? input.reason
      ? `${transition.reason}: ${input.reason}`
      : transition.reason
    : null;
  const [row] = await db<ActionItemRow[]>`
    update incident_action_items a set
      title = coalesce(${input.title ?? null}::text, a.title),
      owner = coalesce(${input.owner ?? null}::text, a.owner),
      due_on = coalesce(${input.dueOn ?? null}::date, a.due_on),
      status = coalesce(${transition?.to ?? null}::text, a.status),
      status_reason = coalesce(${statusReason}::text, a.status_reason),
      updated_at = greatest(now(), a.updated_at)
    where a.incident_id = ${input.incidentId}::uuid and a.id = ${input.itemId}::uuid
      and (${from as string[] | null}::text[] is null or a.status = any(${from as string[] | null}::text[]))
    returning ${actionItemColumns(db)}`;
  return row;
}

/** Open items of every incident due before today (UTC): the figure of incident_action_items_overdue. */
export async function countOverdueActionItems(db: Executor): Promise<{ overdue: number }> {
  const [row] = await db<{ overdue: number }[]>`
    select count(*)::int as overdue from incident_action_items
    where status = 'open' and due_on < (now() at time zone 'UTC')::date`;
  return { overdue: row?.overdue ?? 0 };
}

const postmortemColumns = (db: Executor) => db`
  p.incident_id as "incidentId", p.root_cause as "rootCause", p.went_well as "wentWell",
  p.went_wrong as "wentWrong", p.lessons_learned as "lessonsLearned", p.created_at as "createdAt",
  p.updated_by as "updatedBy", p.updated_at as "updatedAt"`;

/** Creates the incident's empty postmortem unless it has one; true when this call created it. */
export async function insertPostmortemIfAbsent(db: Executor, incidentId: string): Promise<boolean> {
  const rows = await db`
    insert into incident_postmortems (incident_id, created_at, updated_at)
    values (${incidentId}::uuid, now(), now())
    on conflict (incident_id) do nothing
    returning incident_id`;
  return rows.length === 1;
}

export async function selectPostmortem(db: Executor, incidentId: string): Promise<PostmortemRow | undefined> {
  const [row] = await db<PostmortemRow[]>`
    select ${postmortemColumns(db)} from incident_postmortems p where p.incident_id = ${incidentId}::uuid`;
  return row;
}

/** Writes the parts given (others keep their text) on an existing postmortem. */
export async function updatePostmortem(
  db: Executor,
  incidentId: string,
  parts: PostmortemParts,
  updatedBy: string,
): Promise<PostmortemRow> {
  const [row] = await db<PostmortemRow[]>`
    update incident_postmortems p set
      root_cause = coalesce(${parts.rootCause ?? null}::text, p.root_cause),
      went_well = coalesce(${parts.wentWell ?? null}::text, p.went_well),
      went_wrong = coalesce(${parts.wentWrong ?? null}::text, p.went_wrong),
      lessons_learned = coalesce(${parts.lessonsLearned ?? null}::text, p.lessons_learned),
      updated_by = ${updatedBy}::text,
      updated_at = greatest(now(), p.updated_at)
    where p.incident_id = ${incidentId}::uuid
    returning ${postmortemColumns(db)}`;
  assert(row, 'postmortem update of a locked incident found no row');
  return row;
}

export async function countTimelineEvents(db: Executor, incidentId: string): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from incident_timeline where incident_id = ${incidentId}::uuid`;
  return row?.count ?? 0;
}
