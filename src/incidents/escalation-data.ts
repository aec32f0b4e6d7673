import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';
import type { PolicyStep } from './escalation-policy.ts';
import type { Severity } from './states.ts';

export type PolicyRow = {
  version: bigint;
  steps: PolicyStep[];
  reason: string;
  createdBy: string;
  createdAt: Date;
};

export const stepStates = ['pending', 'done', 'missed', 'cancelled'] as const;
export type StepState = (typeof stepStates)[number];

/** A frozen step's machine as data, each transition with its reason; the updates below guard on `from`. */
export const stepTransitions = {
  ran: { from: ['pending'], to: 'done', reason: 'ran within 5 minutes of its due time' },
  ran_late: { from: ['pending'], to: 'missed', reason: 'ran, more than 5 minutes after its due time' },
  cancelled: {
    from: ['pending'],
    to: 'cancelled',
    reason: 'the incident was resolved, or its severity changed away from the step',
  },
} as const satisfies Record<string, { from: readonly StepState[]; to: StepState; reason: string }>;
const cancellable = stepTransitions.cancelled.from as unknown as string[];

export type StepRow = {
  id: bigint;
  incidentId: string;
  policyVersion: bigint;
  position: number;
  severities: Severity[];
  target: string;
  afterSeconds: number;
  dueAt: Date;
  state: StepState;
  stateReason: string;
  ranAt: Date | null;
  cancelledAt: Date | null;
};

/** One step of a policy version to freeze, with its place in that version. */
export type FrozenStep = PolicyStep & { position: number };

const policyColumns = (db: Executor) => db`
  version, steps, reason, created_by as "createdBy", created_at as "createdAt"`;

const stepColumns = (db: Executor) => db`
  id, incident_id as "incidentId", policy_version as "policyVersion", position, severities, target,
  after_seconds as "afterSeconds", due_at as "dueAt", state, state_reason as "stateReason",
  ran_at as "ranAt", cancelled_at as "cancelledAt"`;

/** The policy in force: the newest version (the migration seeds the first). */
export async function selectCurrentPolicy(db: Executor): Promise<PolicyRow> {
  const [row] = await db<PolicyRow[]>`
    select ${policyColumns(db)} from incident_escalation_policies order by version desc limit 1`;
  assert(row, 'no escalation policy: migration 028 seeds one and versions are never deleted');
  return row;
}

export async function selectPolicyVersion(db: Executor, version: bigint): Promise<PolicyRow> {
  const [row] = await db<PolicyRow[]>`
    select ${policyColumns(db)} from incident_escalation_policies where version = ${version}::int8`;
  assert(row, `escalation policy version ${version} is referenced but missing`);
  return row;
}

export async function insertPolicy(
  db: Executor,
  input: { steps: readonly PolicyStep[]; reason: string; createdBy: string },
): Promise<PolicyRow> {
  const [row] = await db<PolicyRow[]>`
    insert into incident_escalation_policies (steps, reason, created_by)
    values (${db.json(input.steps as never)}::jsonb, ${input.reason}::text, ${input.createdBy}::text)
    returning ${policyColumns(db)}`;
  assert(row, 'policy insert returned no row');
  return row;
}

export async function insertIncidentEscalation(
  db: Executor,
  incidentId: string,
  policyVersion: bigint,
): Promise<void> {
  await db`
    insert into incident_escalations (incident_id, policy_version, frozen_at)
    values (${incidentId}::uuid, ${policyVersion}::int8, now())`;
}

/** The version an incident was declared under; undefined for an incident older than migration 028. */
export async function selectIncidentPolicyVersion(
  db: Executor,
  incidentId: string,
): Promise<bigint | undefined> {
  const [row] = await db<{ version: bigint }[]>`
    select policy_version as version from incident_escalations where incident_id = ${incidentId}::uuid`;
  return row?.version;
}

/**
 * Freezes steps onto an incident, each due at `dueFrom + afterSeconds` but never before
 * `dueNotBefore`. A position already frozen and not cancelled (a step that ran, or is pending) is
 * left alone. Returns the earliest due time of the steps inserted.
 */
export async function insertSteps(
  db: Executor,
  input: {
    incidentId: string;
    policyVersion: bigint;
    steps: readonly FrozenStep[];
    dueFrom: Date;
    dueNotBefore: Date;
    reason: string;
  },
): Promise<Date | undefined> {
  if (input.steps.length === 0) return undefined;
  const [row] = await db<{ firstDueAt: Date | null }[]>`
    with inserted as (
      insert into incident_escalation_steps (incident_id, policy_version, position, severities, target,
        after_seconds, due_at, state, state_reason)
      select ${input.incidentId}::uuid, ${input.policyVersion}::int8, step.position,
        string_to_array(step.severities, ','), step.target, step.after_seconds,
        greatest(${input.dueFrom}::timestamptz + make_interval(secs => step.after_seconds),
          ${input.dueNotBefore}::timestamptz),
        'pending', ${input.reason}::text
      from unnest(${input.steps.map((step) => step.position)}::int[],
        ${input.steps.map((step) => step.severities.join(','))}::text[],
        ${input.steps.map((step) => step.target)}::text[],
        ${input.steps.map((step) => step.afterSeconds)}::int[]) as step(position, severities, target, after_seconds)
      on conflict (incident_id, position) where state <> 'cancelled' do nothing
      returning due_at)
    select min(due_at) as "firstDueAt" from inserted`;
  return row?.firstDueAt ?? undefined;
}

/**
 * Cancels the incident's pending steps; with `keepSeverity`, only those that do not apply to it.
 * Returns how many were cancelled.
 */
export async function cancelPendingSteps(
  db: Executor,
  input: { incidentId: string; reason: string; keepSeverity: Severity | undefined },
): Promise<number> {
  const rows = await db`
    update incident_escalation_steps set state = 'cancelled', state_reason = ${input.reason}::text,
      cancelled_at = now()
    where incident_id = ${input.incidentId}::uuid and state = any(${cancellable}::text[])
      and (${input.keepSeverity ?? null}::text is null or not (${input.keepSeverity ?? null}::text = any(severities)))
    returning id`;
  return rows.length;
}

/**
 * Claims incidents that have steps due at `now`, oldest due first: the incident's row lock, taken
 * with `skip locked`, so concurrent runners share the incidents out and none waits. The runner
 * locks the incident and then its steps, the order every other writer of steps (the timeline
 * hook under the incident's lock) follows too; claiming step rows first would deadlock with it.
 */
export async function claimIncidentsWithDueSteps(db: Executor, now: Date, limit: number): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select i.id from incidents i
    join (select incident_id, min(due_at) as due_at from incident_escalation_steps
          where state = 'pending' and due_at <= ${now}::timestamptz group by incident_id) due
      on due.incident_id = i.id
    order by due.due_at, i.id
    limit ${limit}::int
    for update of i skip locked`;
  return rows.map((row) => row.id);
}

/** The incident's due steps, in the order they fire; the caller holds the incident's row lock. */
export async function selectDueSteps(
  db: Executor,
  incidentId: string,
  now: Date,
  limit: number,
): Promise<StepRow[]> {
  return db<StepRow[]>`
    select ${stepColumns(db)} from incident_escalation_steps
    where incident_id = ${incidentId}::uuid and state = 'pending' and due_at <= ${now}::timestamptz
    order by due_at, position limit ${limit}::int for update`;
}

/** Guarded by the transition's sources: false when the step was already run or cancelled. */
export async function markStepRan(
  db: Executor,
  input: { id: bigint; transition: 'ran' | 'ran_late'; detail: string; ranAt: Date },
): Promise<boolean> {
  const { from, to, reason } = stepTransitions[input.transition];
  const rows = await db`
    update incident_escalation_steps set state = ${to}::text,
      state_reason = ${`${reason}: ${input.detail}`}::text, ran_at = ${input.ranAt}::timestamptz
    where id = ${input.id}::int8 and state = any(${from as unknown as string[]}::text[]) returning id`;
  return rows.length === 1;
}

export async function cancelStep(db: Executor, id: bigint, reason: string): Promise<void> {
  await db`
    update incident_escalation_steps set state = 'cancelled', state_reason = ${reason}::text,
      cancelled_at = now()
    where id = ${id}::int8 and state = any(${cancellable}::text[])`;
}

export async function selectStep(db: Executor, id: bigint): Promise<StepRow | undefined> {
  const [row] = await db<StepRow[]>`
    select ${stepColumns(db)} from incident_escalation_steps where id = ${id}::int8`;
  return row;
}

/** Oldest first, keyset-paged on id. */
export async function selectStepsPage(
  db: Executor,
  incidentId: string,
  afterId: bigint | undefined,
  limit: number,
): Promise<StepRow[]> {
  return db<StepRow[]>`
    select ${stepColumns(db)} from incident_escalation_steps
    where incident_id = ${incidentId}::uuid and id > ${afterId ?? 0n}::int8
    order by id limit ${limit}::int`;
}
