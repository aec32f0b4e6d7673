import { appendAudit } from '../audit/audit.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { selectIncident } from './data.ts';
import { insertPolicy, type PolicyRow, selectCurrentPolicy, selectStepsPage } from './escalation-data.ts';
import { checkPolicySteps, type PolicyStep, type PolicyView } from './escalation-policy.ts';
import { type StepView, stepView } from './escalation-steps.ts';
import { type ManualReminderKind, type ReminderView, remindersOf, reminderView } from './reminders.ts';
import { closeReminders, selectRemindersPage } from './reminders-data.ts';
import { type Actor, appendTimeline, lockIncident } from './service.ts';

/** The escalation policy and the per-incident views of steps and reminders, for routes and the CLI. */

export const stepsPageMax = 200;
export const remindersPageMax = 200;

function policyView(row: PolicyRow): PolicyView {
  return {
    version: Number(row.version),
    steps: row.steps,
    reason: row.reason,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
  };
}

export async function getEscalationPolicy(db: Executor): Promise<PolicyView> {
  return policyView(await selectCurrentPolicy(db));
}

/**
 * Stores a new version of the policy, audited with the version it replaces. Incidents already
 * declared keep their own version: only incidents declared from now on use this one.
 */
export async function setEscalationPolicy(
  sql: Sql,
  input: { steps: readonly PolicyStep[]; reason: string },
  actor: Actor,
): Promise<PolicyView> {
  checkPolicySteps(input.steps);
  return withTransaction(sql, async (tx) => {
    const before = await selectCurrentPolicy(tx);
    const row = await insertPolicy(tx, { steps: input.steps, reason: input.reason, createdBy: actor.name });
    await appendAudit(tx, {
      actor: actor.name,
      action: 'incident_policy.escalation_set',
      subjectType: 'incident_escalation_policy',
      subjectId: row.version.toString(),
      before: { version: before.version.toString(), steps: before.steps },
      after: { version: row.version.toString(), steps: row.steps, reason: row.reason },
      requestId: actor.requestId,
    });
    return policyView(row);
  });
}

async function requireIncident(db: Executor, id: string): Promise<void> {
  if (!(await selectIncident(db, id))) throw new DomainError('incidents/not-found', `no incident ${id}`);
}

export async function getEscalationSteps(
  db: Executor,
  incidentId: string,
  afterId: bigint | undefined,
  limit: number,
): Promise<StepView[]> {
  await requireIncident(db, incidentId);
  return (await selectStepsPage(db, incidentId, afterId, limit)).map(stepView);
}

export async function getReminders(
  db: Executor,
  incidentId: string,
  afterId: bigint | undefined,
  limit: number,
): Promise<ReminderView[]> {
  await requireIncident(db, incidentId);
  const now = new Date();
  return (await selectRemindersPage(db, incidentId, afterId, limit)).map((row) => reminderView(row, now));
}

/**
 * A person says the reminder's work is done (the postmortem meeting was held): recorded on the
 * timeline. Returns the incident's open reminders.
 */
export async function completeReminder(
  sql: Sql,
  incidentId: string,
  kind: ManualReminderKind,
  actor: Actor,
): Promise<ReminderView[]> {
  return withTransaction(sql, async (tx) => {
    await lockIncident(tx, incidentId);
    const closed = await closeReminders(tx, { incidentId, kinds: [kind], reason: 'by_hand', by: actor.name });
    if (closed.length === 0) {
      throw new DomainError(
        'incidents/no-open-reminder',
        `incident ${incidentId} has no open ${kind} reminder`,
      );
    }
    await appendTimeline(
      tx,
      incidentId,
      {
        kind: 'reminder_done',
        source: 'person',
        summary: `${kind.replaceAll('_', ' ')} done`,
        detail: { kind },
      },
      actor,
    );
    return remindersOf(tx, incidentId);
  });
}
