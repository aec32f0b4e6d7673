import type { Tx } from '../platform/db/types.ts';
import { enqueueJob } from '../platform/jobs.ts';
import type { IncidentRow } from './data.ts';
import {
  cancelPendingSteps,
  type FrozenStep,
  insertIncidentEscalation,
  insertSteps,
  type StepRow,
  type StepState,
  selectCurrentPolicy,
  selectIncidentPolicyVersion,
  selectPolicyVersion,
} from './escalation-data.ts';
import type { PolicyStep } from './escalation-policy.ts';
import type { Severity } from './states.ts';

/**
 * Freezing the escalation policy onto an incident (Grafana OnCall copies the chain onto the alert
 * group for the same reason: a later edit of the policy must not change a running incident), and
 * what a severity change, a resolution and a reopening do to the frozen steps. Everything here
 * runs in the caller's transaction under the incident's row lock.
 */

export const escalateTask = 'incident_escalate';

function stepsFor(steps: readonly PolicyStep[], severity: Severity): FrozenStep[] {
  return steps
    .map((step, index) => ({ ...step, position: index + 1 }))
    .filter((step) => step.severities.includes(severity));
}

/**
 * Wakes the runner when the first new step falls due, besides its every-minute cron tick. One job
 * per incident: a later enqueue (a severity change) replaces it.
 */
async function wakeRunnerAt(tx: Tx, incidentId: string, dueAt: Date | undefined): Promise<void> {
  if (dueAt === undefined) return;
  await enqueueJob(tx, escalateTask, {}, { jobKey: `${escalateTask}:${incidentId}`, runAt: dueAt });
}

/** At declaration: the policy in force is the incident's for good; its severity's steps are due from declared_at. */
export async function freezeEscalation(tx: Tx, incident: IncidentRow): Promise<void> {
  const policy = await selectCurrentPolicy(tx);
  await insertIncidentEscalation(tx, incident.id, policy.version);
  const firstDueAt = await insertSteps(tx, {
    incidentId: incident.id,
    policyVersion: policy.version,
    steps: stepsFor(policy.steps, incident.severity),
    dueFrom: incident.declaredAt,
    dueNotBefore: incident.declaredAt,
    reason: `frozen at declaration (${incident.severity})`,
  });
  await wakeRunnerAt(tx, incident.id, firstDueAt);
}

/**
 * Steps of the new severity from the incident's own policy version, due from declared_at but never
 * before now (a step already past is due at once, not reported as missed); pending steps that do
 * not apply to the new severity are cancelled. A step that already ran is not repeated.
 */
export async function escalationOnSeverityChange(tx: Tx, incident: IncidentRow, now: Date): Promise<void> {
  const version = await selectIncidentPolicyVersion(tx, incident.id);
  if (version === undefined) return;
  await cancelPendingSteps(tx, {
    incidentId: incident.id,
    reason: `severity changed to ${incident.severity}`,
    keepSeverity: incident.severity,
  });
  const policy = await selectPolicyVersion(tx, version);
  const firstDueAt = await insertSteps(tx, {
    incidentId: incident.id,
    policyVersion: version,
    steps: stepsFor(policy.steps, incident.severity),
    dueFrom: incident.declaredAt,
    dueNotBefore: now,
    reason: `frozen on severity change to ${incident.severity}`,
  });
  await wakeRunnerAt(tx, incident.id, firstDueAt);
}

/** A resolved incident stops escalating. */
export async function escalationOnResolve(tx: Tx, incidentId: string): Promise<void> {
  await cancelPendingSteps(tx, { incidentId, reason: 'incident resolved', keepSeverity: undefined });
}

/**
 * A reopened incident escalates again, its clock restarted at the reopening: the impact came back
 * now, so "unresolved for 30 minutes" counts from now. Steps that already ran are not repeated.
 */
export async function escalationOnReopen(tx: Tx, incident: IncidentRow, now: Date): Promise<void> {
  const version = await selectIncidentPolicyVersion(tx, incident.id);
  if (version === undefined) return;
  const policy = await selectPolicyVersion(tx, version);
  const firstDueAt = await insertSteps(tx, {
    incidentId: incident.id,
    policyVersion: version,
    steps: stepsFor(policy.steps, incident.severity),
    dueFrom: now,
    dueNotBefore: now,
    reason: 'frozen again on reopening',
  });
  await wakeRunnerAt(tx, incident.id, firstDueAt);
}

export type StepView = {
  id: string;
  policyVersion: number;
  position: number;
  severities: Severity[];
  target: string;
  afterSeconds: number;
  dueAt: string;
  state: StepState;
  stateReason: string;
  ranAt: string | null;
  cancelledAt: string | null;
};

export function stepView(row: StepRow): StepView {
  return {
    id: row.id.toString(),
    policyVersion: Number(row.policyVersion),
    position: row.position,
    severities: row.severities,
    target: row.target,
    afterSeconds: row.afterSeconds,
    dueAt: row.dueAt.toISOString(),
    state: row.state,
    stateReason: row.stateReason,
    ranAt: row.ranAt?.toISOString() ?? null,
    cancelledAt: row.cancelledAt?.toISOString() ?? null,
  };
}
