import { assert } from '../platform/assert.ts';
import type { Tx } from '../platform/db/types.ts';
import { selectIncident } from './data.ts';
import { escalationOnReopen, escalationOnResolve, escalationOnSeverityChange } from './escalation-steps.ts';
import {
  openReminders,
  remindersOnResolve,
  remindersOnSeverityChange,
  remindersOnUpdate,
} from './reminders.ts';
import type { TimelineKind } from './states.ts';

/**
 * The one reaction to timeline events, called by `appendTimeline` in the same transaction, under
 * the incident's row lock: escalation steps and update reminders follow the events (declared,
 * status and severity changes, notes, published messages) so that the features that write those
 * events need not know about either.
 */
export async function onTimelineEvent(
  tx: Tx,
  incidentId: string,
  kind: TimelineKind,
  detail: Readonly<Record<string, unknown>>,
  actor: string,
): Promise<void> {
  if (!['declared', 'status_changed', 'severity_changed', 'note', 'message_published'].includes(kind)) return;
  const incident = await selectIncident(tx, incidentId);
  assert(incident, `timeline event ${kind} for incident ${incidentId}, which does not exist`);
  if (kind === 'declared') {
    await openReminders(tx, incidentId, incident.severity);
    return;
  }
  if (kind === 'severity_changed') {
    await escalationOnSeverityChange(tx, incident, incident.updatedAt);
    await remindersOnSeverityChange(tx, incidentId, incident.severity, actor);
    return;
  }
  if (kind === 'status_changed' && detail.to === 'resolved') {
    await escalationOnResolve(tx, incidentId);
    await remindersOnResolve(tx, incidentId, incident.severity, actor);
    return;
  }
  if (kind === 'status_changed' && detail.transition === 'reopened') {
    await escalationOnReopen(tx, incident, incident.updatedAt);
    await openReminders(tx, incidentId, incident.severity);
    return;
  }
  await remindersOnUpdate(tx, incidentId, kind, actor);
}
