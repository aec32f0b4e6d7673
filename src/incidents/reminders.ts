import type { Executor, Tx } from '../platform/db/types.ts';
import {
  closeReminders,
  dueNoLaterThanNow,
  insertReminder,
  type ReminderKind,
  type ReminderRow,
  selectOpenReminders,
} from './reminders-data.ts';
import type { Severity } from './states.ts';

/**
 * Update reminders stored as `due_at` (Netflix Dispatch's hourly job skipped a reminder when a tick
 * was missed; a stored due time cannot be skipped): seed 004's internal update every 15 minutes
 * for P0/P1, a status-page update at once for P0/P1 and within an hour for P2/P3, and for P0/P1 a
 * postmortem meeting within 48 hours of resolution. They react to timeline events only
 * (`reactToTimeline`, called from `appendTimeline`), so other features need not know about them.
 */

export const internalUpdateEverySeconds = 15 * 60;
export const postmortemMeetingWithinSeconds = 48 * 60 * 60;
export const statusPageUpdateWithinSeconds = {
  P0: 0,
  P1: 0,
  P2: 60 * 60,
  P3: 60 * 60,
} as const satisfies Record<Severity, number>;
/** Severities that get internal-update and postmortem-meeting reminders. */
const urgent: readonly Severity[] = ['P0', 'P1'];
/** Reminders a person closes by hand; the others close on the timeline events that fulfil them. */
export const manualReminderKinds = ['postmortem_meeting'] as const satisfies readonly ReminderKind[];
export type ManualReminderKind = (typeof manualReminderKinds)[number];

/** Events after which the internal update counts as given, and the next one is due in 15 minutes. */
const updateKinds: readonly string[] = ['note', 'status_changed', 'message_published'];

export type ReminderView = {
  id: string;
  kind: ReminderKind;
  dueAt: string;
  overdue: boolean;
  notifiedAt: string | null;
  doneAt: string | null;
  doneReason: string | null;
  doneBy: string | null;
};

export function reminderView(row: ReminderRow, now: Date = new Date()): ReminderView {
  return {
    id: row.id.toString(),
    kind: row.kind,
    dueAt: row.dueAt.toISOString(),
    overdue: row.doneAt === null && row.dueAt < now,
    notifiedAt: row.notifiedAt?.toISOString() ?? null,
    doneAt: row.doneAt?.toISOString() ?? null,
    doneReason: row.doneReason,
    doneBy: row.doneBy,
  };
}

/** The incident's open reminders, soonest first (at most one per kind): for `incident show`. */
export async function remindersOf(db: Executor, incidentId: string): Promise<ReminderView[]> {
  const now = new Date();
  return (await selectOpenReminders(db, incidentId)).map((row) => reminderView(row, now));
}

/** The reminders of an incident that starts (a declaration) or starts again (a reopening). */
export async function openReminders(tx: Tx, incidentId: string, severity: Severity): Promise<void> {
  if (urgent.includes(severity)) {
    await insertReminder(tx, {
      incidentId,
      kind: 'internal_update',
      afterSeconds: internalUpdateEverySeconds,
    });
  }
  await insertReminder(tx, {
    incidentId,
    kind: 'status_page_update',
    afterSeconds: statusPageUpdateWithinSeconds[severity],
  });
}

/** An update was given: the open internal-update reminder closes and the next is due in 15 minutes. */
export async function remindersOnUpdate(
  tx: Tx,
  incidentId: string,
  kind: string,
  actor: string,
): Promise<void> {
  if (!updateKinds.includes(kind)) return;
  const closed = await closeReminders(tx, {
    incidentId,
    kinds: ['internal_update'],
    reason: kind,
    by: actor,
  });
  if (closed.length > 0) {
    await insertReminder(tx, {
      incidentId,
      kind: 'internal_update',
      afterSeconds: internalUpdateEverySeconds,
    });
  }
  if (kind === 'message_published') {
    await closeReminders(tx, { incidentId, kinds: ['status_page_update'], reason: kind, by: actor });
  }
}

/** Resolution ends the update reminders and, for P0/P1, asks for the postmortem meeting. */
export async function remindersOnResolve(
  tx: Tx,
  incidentId: string,
  severity: Severity,
  actor: string,
): Promise<void> {
  await closeReminders(tx, {
    incidentId,
    kinds: ['internal_update', 'status_page_update'],
    reason: 'resolved',
    by: actor,
  });
  if (urgent.includes(severity)) {
    await insertReminder(tx, {
      incidentId,
      kind: 'postmortem_meeting',
      afterSeconds: postmortemMeetingWithinSeconds,
    });
  }
}

/**
 * Raised to P0/P1: internal updates start and an open status-page reminder is due at once.
 * Lowered to P2/P3: internal updates stop; an open status-page reminder keeps its due time.
 */
export async function remindersOnSeverityChange(
  tx: Tx,
  incidentId: string,
  severity: Severity,
  actor: string,
): Promise<void> {
  if (urgent.includes(severity)) {
    await insertReminder(tx, {
      incidentId,
      kind: 'internal_update',
      afterSeconds: internalUpdateEverySeconds,
    });
    await dueNoLaterThanNow(tx, incidentId, 'status_page_update');
    return;
  }
  await closeReminders(tx, { incidentId, kinds: ['internal_update'], reason: 'severity_changed', by: actor });
}
