import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import type { Logger } from '../platform/logging.ts';
import type { IncidentRow } from './data.ts';
import {
  cancelStep,
  claimIncidentsWithDueSteps,
  markStepRan,
  type StepRow,
  selectDueSteps,
} from './escalation-data.ts';
import { escalationStepsMissed } from './escalation-metrics.ts';
import {
  claimIncidentsWithDueReminders,
  markReminderNotified,
  selectDueReminders,
} from './reminders-data.ts';
import { type Actor, appendTimeline, lockIncident } from './service.ts';
import { enqueueStepWebhook } from './webhook.ts';

/**
 * The escalation runner (`incident_escalate`, every minute and at each incident's first due step):
 * runs the frozen steps that are due and announces due update reminders. `now` is a parameter,
 * compared in SQL as `${now}::timestamptz`, so tests drive the clock.
 */

/** Incidents claimed per transaction, and transactions per run: a run handles at most their product. */
export const incidentsPerBatchMax = 20;
export const batchesPerRunMax = 10;
/** Steps and reminders handled per incident per batch (a policy has at most 20 steps). */
export const stepsPerIncidentMax = 20;
export const remindersPerIncidentMax = 3;
/** A step run this long after its due time is recorded as missed (Grafana OnCall's rule). */
export const stepMissedAfterSeconds = 5 * 60;

const runner: Actor = { name: 'escalation', requestId: undefined };

export type RunnerDeps = { sql: Sql; logger: Logger; webhook: boolean };

export type RunResult = {
  stepsRun: number;
  stepsMissed: number;
  stepsCancelled: number;
  remindersDue: number;
};

type StepOutcome =
  | { kind: 'ran'; missed: boolean; lateSeconds: number; step: StepRow }
  | { kind: 'cancelled' };

function minutes(seconds: number): string {
  return seconds % 3_600 === 0 ? `${seconds / 3_600} h` : `${Math.round(seconds / 60)} min`;
}

/**
 * Runs one due step of an incident whose row lock the caller holds. The step must still be the
 * active one: pending (the claim re-reads it under the lock), the incident unresolved, and the
 * step one of the incident's current severity; otherwise it is cancelled, never run.
 */
async function runStep(
  tx: Tx,
  deps: RunnerDeps,
  incident: IncidentRow,
  step: StepRow,
  now: Date,
): Promise<StepOutcome> {
  if (incident.status === 'resolved') {
    await cancelStep(tx, step.id, 'incident resolved');
    return { kind: 'cancelled' };
  }
  if (!step.severities.includes(incident.severity)) {
    await cancelStep(tx, step.id, `severity changed to ${incident.severity}`);
    return { kind: 'cancelled' };
  }
  const lateSeconds = Math.max(0, Math.floor((now.getTime() - step.dueAt.getTime()) / 1_000));
  const missed = lateSeconds > stepMissedAfterSeconds;
  const ran = await markStepRan(tx, {
    id: step.id,
    transition: missed ? 'ran_late' : 'ran',
    detail: `${lateSeconds}s after its due time`,
    ranAt: now,
  });
  if (!ran) return { kind: 'cancelled' };
  const detail = {
    stepId: step.id.toString(),
    position: step.position,
    target: step.target,
    afterSeconds: step.afterSeconds,
    dueAt: step.dueAt.toISOString(),
    ranAt: now.toISOString(),
    policyVersion: Number(step.policyVersion),
    severity: incident.severity,
    status: incident.status,
  };
  await appendTimeline(
    tx,
    incident.id,
    {
      kind: 'escalation_step',
      source: 'escalation',
      summary: `${step.target} notified: ${incident.severity} unresolved for ${minutes(step.afterSeconds)} (${incident.status})`,
      detail,
    },
    runner,
  );
  if (missed) {
    await appendTimeline(
      tx,
      incident.id,
      {
        kind: 'escalation_step_missed',
        source: 'escalation',
        summary: `escalation to ${step.target} ran ${minutes(lateSeconds)} late`,
        detail: { ...detail, lateSeconds },
      },
      runner,
    );
  }
  if (deps.webhook) await enqueueStepWebhook(tx, step.id);
  return { kind: 'ran', missed, lateSeconds, step };
}

type Ran = { incident: IncidentRow; outcome: StepOutcome };

async function stepsBatch(deps: RunnerDeps, now: Date): Promise<{ claimed: number; ran: Ran[] }> {
  return withTransaction(deps.sql, async (tx) => {
    const ids = await claimIncidentsWithDueSteps(tx, now, incidentsPerBatchMax);
    const ran: Ran[] = [];
    for (const id of ids) {
      const incident = await lockIncident(tx, id);
      for (const step of await selectDueSteps(tx, id, now, stepsPerIncidentMax)) {
        ran.push({ incident, outcome: await runStep(tx, deps, incident, step, now) });
      }
    }
    return { claimed: ids.length, ran };
  });
}

/** The log line of each step, written once its transaction committed: one per step, with the incident as it is now. */
function logStep(logger: Logger, { incident, outcome }: Ran): void {
  if (outcome.kind !== 'ran') return;
  const fields = {
    incidentId: incident.id,
    incidentNumber: Number(incident.number),
    severity: incident.severity,
    status: incident.status,
    title: incident.title,
    stepId: outcome.step.id.toString(),
    position: outcome.step.position,
    target: outcome.step.target,
    dueAt: outcome.step.dueAt.toISOString(),
    lateSeconds: outcome.lateSeconds,
  };
  if (outcome.missed) logger.warn(fields, 'incident escalation step ran late: recorded as missed');
  else logger.info(fields, 'incident escalation step ran');
}

async function remindersBatch(deps: RunnerDeps, now: Date): Promise<{ claimed: number; due: number }> {
  return withTransaction(deps.sql, async (tx) => {
    const ids = await claimIncidentsWithDueReminders(tx, now, incidentsPerBatchMax);
    let due = 0;
    for (const id of ids) {
      const incident = await lockIncident(tx, id);
      for (const reminder of await selectDueReminders(tx, id, now, remindersPerIncidentMax)) {
        if (!(await markReminderNotified(tx, reminder.id, now))) continue;
        await appendTimeline(
          tx,
          id,
          {
            kind: 'reminder_due',
            source: 'reminder',
            summary: `${reminder.kind.replaceAll('_', ' ')} due (${incident.severity}, ${incident.status})`,
            detail: {
              reminderId: reminder.id.toString(),
              kind: reminder.kind,
              dueAt: reminder.dueAt.toISOString(),
            },
          },
          runner,
        );
        deps.logger.info(
          {
            incidentId: id,
            incidentNumber: Number(incident.number),
            kind: reminder.kind,
            dueAt: reminder.dueAt,
          },
          'incident reminder due',
        );
        due += 1;
      }
    }
    return { claimed: ids.length, due };
  });
}

/** One run: bounded batches of due steps, then of due reminders. */
export async function runEscalations(deps: RunnerDeps, now: Date): Promise<RunResult> {
  const result: RunResult = { stepsRun: 0, stepsMissed: 0, stepsCancelled: 0, remindersDue: 0 };
  for (let batch = 0; batch < batchesPerRunMax; batch += 1) {
    const { claimed, ran } = await stepsBatch(deps, now);
    for (const entry of ran) {
      logStep(deps.logger, entry);
      if (entry.outcome.kind === 'cancelled') result.stepsCancelled += 1;
      else result.stepsRun += 1;
      if (entry.outcome.kind === 'ran' && entry.outcome.missed) {
        result.stepsMissed += 1;
        escalationStepsMissed.inc();
      }
    }
    if (claimed < incidentsPerBatchMax) break;
  }
  for (let batch = 0; batch < batchesPerRunMax; batch += 1) {
    const { claimed, due } = await remindersBatch(deps, now);
    result.remindersDue += due;
    if (claimed < incidentsPerBatchMax) break;
  }
  return result;
}
