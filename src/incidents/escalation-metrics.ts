import { Counter, Gauge } from 'prom-client';
import { databaseFigures, registry } from '../platform/metrics.ts';
import { countOverdueReminders, reminderKinds } from './reminders-data.ts';

/**
 * Escalation steps run more than `stepMissedAfterSeconds` after their due time, counted by the
 * runner after the transaction that recorded them commits. Any increase alerts
 * (IncidentEscalationStepMissed).
 */
export const escalationStepsMissed = new Counter({
  name: 'incident_escalation_steps_missed_total',
  help: 'Incident escalation steps that ran more than 5 minutes after they were due (recorded as missed on the timeline).',
  registers: [registry],
});

/** How fresh the gauge is at most: one count query per window per process, as for webhook gauges. */
export const overdueCacheMs = 5_000;

const overdueFigures = databaseFigures(
  countOverdueReminders,
  { internal_update: 0, status_page_update: 0, postmortem_meeting: 0 },
  overdueCacheMs,
);

/** Where the gauge counts from; set by the routes and tasks of this process. */
export const countOverdueRemindersFrom = overdueFigures.from;

/**
 * Open update reminders past their due time, by kind (three values), counted from the database at
 * scrape (the runner may live in a process that serves no metrics). Alerts on max() across
 * instances (IncidentReminderOverdue).
 */
export const remindersOverdue = new Gauge({
  name: 'incident_reminders_overdue',
  help: 'Open incident update reminders past their due time, by kind (internal_update, status_page_update, postmortem_meeting), counted from the database.',
  labelNames: ['kind'] as const,
  registers: [registry],
  async collect() {
    const counts = await overdueFigures.current();
    for (const kind of reminderKinds) this.set({ kind }, counts[kind]);
  },
});
