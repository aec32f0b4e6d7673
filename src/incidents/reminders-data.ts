import type { Executor } from '../platform/db/types.ts';

export const reminderKinds = ['internal_update', 'status_page_update', 'postmortem_meeting'] as const;
export type ReminderKind = (typeof reminderKinds)[number];

export type ReminderRow = {
  id: bigint;
  incidentId: string;
  kind: ReminderKind;
  dueAt: Date;
  notifiedAt: Date | null;
  doneAt: Date | null;
  doneReason: string | null;
  doneBy: string | null;
  createdAt: Date;
};

const reminderColumns = (db: Executor) => db`
  id, incident_id as "incidentId", kind, due_at as "dueAt", notified_at as "notifiedAt",
  done_at as "doneAt", done_reason as "doneReason", done_by as "doneBy", created_at as "createdAt"`;

/** Opens a reminder due `afterSeconds` from now unless one of its kind is open already. */
export async function insertReminder(
  db: Executor,
  input: { incidentId: string; kind: ReminderKind; afterSeconds: number },
): Promise<void> {
  await db`
    insert into incident_reminders (incident_id, kind, due_at)
    values (${input.incidentId}::uuid, ${input.kind}::text,
      now() + make_interval(secs => ${input.afterSeconds}::int))
    on conflict (incident_id, kind) where done_at is null do nothing`;
}

/** Closes the open reminders of these kinds; returns the kinds it closed. */
export async function closeReminders(
  db: Executor,
  input: { incidentId: string; kinds: readonly ReminderKind[]; reason: string; by: string },
): Promise<ReminderKind[]> {
  const rows = await db<{ kind: ReminderKind }[]>`
    update incident_reminders set done_at = greatest(now(), created_at), done_reason = ${input.reason}::text,
      done_by = ${input.by}::text
    where incident_id = ${input.incidentId}::uuid and done_at is null
      and kind = any(${input.kinds as ReminderKind[]}::text[])
    returning kind`;
  return rows.map((row) => row.kind);
}

/** Brings an open reminder's due time forward to now at the latest (a severity raised to P0/P1). */
export async function dueNoLaterThanNow(db: Executor, incidentId: string, kind: ReminderKind): Promise<void> {
  await db`
    update incident_reminders set due_at = least(due_at, now())
    where incident_id = ${incidentId}::uuid and kind = ${kind}::text and done_at is null`;
}

/** Like claimIncidentsWithDueSteps: incidents with reminders due and not yet notified, skip locked. */
export async function claimIncidentsWithDueReminders(
  db: Executor,
  now: Date,
  limit: number,
): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select i.id from incidents i
    join (select incident_id, min(due_at) as due_at from incident_reminders
          where done_at is null and notified_at is null and due_at <= ${now}::timestamptz
          group by incident_id) due
      on due.incident_id = i.id
    order by due.due_at, i.id
    limit ${limit}::int
    for update of i skip locked`;
  return rows.map((row) => row.id);
}

/** The caller holds the incident's row lock. */
export async function selectDueReminders(
  db: Executor,
  incidentId: string,
  now: Date,
  limit: number,
): Promise<ReminderRow[]> {
  return db<ReminderRow[]>`
    select ${reminderColumns(db)} from incident_reminders
    where incident_id = ${incidentId}::uuid and done_at is null and notified_at is null
      and due_at <= ${now}::timestamptz
    order by due_at, id limit ${limit}::int for update`;
}

/** Guarded by `notified_at is null`: a reminder is announced once. */
export async function markReminderNotified(db: Executor, id: bigint, now: Date): Promise<boolean> {
  const rows = await db`
    update incident_reminders set notified_at = ${now}::timestamptz
    where id = ${id}::int8 and notified_at is null and done_at is null returning id`;
  return rows.length === 1;
}

/** The open reminders, soonest due first: at most one per kind (incident_reminders_one_open). */
export async function selectOpenReminders(db: Executor, incidentId: string): Promise<ReminderRow[]> {
  return db<ReminderRow[]>`
    select ${reminderColumns(db)} from incident_reminders
    where incident_id = ${incidentId}::uuid and done_at is null
    order by due_at, id`;
}

/** Oldest first, keyset-paged on id. */
export async function selectRemindersPage(
  db: Executor,
  incidentId: string,
  afterId: bigint | undefined,
  limit: number,
): Promise<ReminderRow[]> {
  return db<ReminderRow[]>`
    select ${reminderColumns(db)} from incident_reminders
    where incident_id = ${incidentId}::uuid and id > ${afterId ?? 0n}::int8
    order by id limit ${limit}::int`;
}

/** Open reminders past their due time, by kind, for the gauge; served by a partial index. */
export async function countOverdueReminders(db: Executor): Promise<Record<ReminderKind, number>> {
  const rows = await db<{ kind: ReminderKind; count: number }[]>`
    select kind, count(*)::int as count from incident_reminders
    where done_at is null and due_at < now() group by kind`;
  const counts = { internal_update: 0, status_page_update: 0, postmortem_meeting: 0 };
  for (const row of rows) counts[row.kind] = row.count;
  return counts;
}
