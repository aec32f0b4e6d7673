/**
 * Incidents as data: severities with their targets (seed 004), the status machine with the reason
 * of every transition, the roles and the timeline's kinds. `data.ts` guards each status update with
 * `where status = any(<allowed sources>)`, so a transition not listed here cannot happen.
 */

export const severities = ['P0', 'P1', 'P2', 'P3'] as const;
export type Severity = (typeof severities)[number];

/**
 * Respond and resolve targets per severity. "Respond immediately" (P0) is read as within five
 * minutes: the same grace after which an escalation step counts as missed.
 */
export const severityTargets = {
  P0: { respondSeconds: 5 * 60, resolveSeconds: 60 * 60 },
  P1: { respondSeconds: 15 * 60, resolveSeconds: 4 * 60 * 60 },
  P2: { respondSeconds: 60 * 60, resolveSeconds: 24 * 60 * 60 },
  P3: { respondSeconds: 4 * 60 * 60, resolveSeconds: 72 * 60 * 60 },
} as const satisfies Record<Severity, { respondSeconds: number; resolveSeconds: number }>;

export const statuses = ['investigating', 'identified', 'monitoring', 'resolved'] as const;
export type Status = (typeof statuses)[number];
export const openStatuses = [
  'investigating',
  'identified',
  'monitoring',
] as const satisfies readonly Status[];

export const transitions = {
  cause_identified: { from: ['investigating'], to: 'identified', reason: 'the cause is known' },
  mitigated: {
    from: ['investigating', 'identified'],
    to: 'monitoring',
    reason: 'a fix or mitigation is in place and is being watched',
  },
  cause_doubted: {
    from: ['identified', 'monitoring'],
    to: 'investigating',
    reason: 'the cause or the fix was not what it seemed',
  },
  resolved: { from: openStatuses, to: 'resolved', reason: 'a person declared the impact over' },
  reopened: { from: ['resolved'], to: 'investigating', reason: 'the impact came back after resolution' },
} as const satisfies Record<string, { from: readonly Status[]; to: Status; reason: string }>;
export type Transition = keyof typeof transitions;

/** The one transition of a machine (`transitions`, or another table like it) from `from` to `to`. */
export function transitionIn<S extends string, T extends string>(
  table: Record<T, { from: readonly S[]; to: S }>,
  from: S,
  to: S,
): T | undefined {
  for (const [name, transition] of Object.entries(table) as [T, { from: readonly S[]; to: S }][]) {
    if (transition.to === to && transition.from.includes(from)) return name;
  }
  return undefined;
}

/** The one transition that leads from `from` to `to`, if any. */
export function transitionBetween(from: Status, to: Status): Transition | undefined {
  return transitionIn<Status, Transition>(transitions, from, to);
}

export const incidentRoles = ['commander', 'communications'] as const;
export type IncidentRole = (typeof incidentRoles)[number];

/** Who wrote a timeline event. */
export const timelineSources = ['person', 'alertmanager', 'system', 'escalation', 'reminder'] as const;
export type TimelineSource = (typeof timelineSources)[number];

/**
 * Every kind of timeline event. Kinds are stable identifiers, like result codes: never renamed or
 * reused; a new kind of event gets a new entry.
 */
export const timelineKinds = [
  'declared',
  'acknowledged',
  'status_changed',
  'severity_changed',
  'details_changed',
  'role_assumed',
  'role_renounced',
  'note',
  'alert_firing',
  'alert_resolved',
  'alerts_truncated',
  'payments_mode_changed',
  'proposal_created',
  'proposal_reviewed',
  'snapshot_attached',
  'message_published',
  'escalation_step',
  'escalation_step_missed',
  'reminder_due',
  'reminder_done',
  'action_item_added',
  'action_item_updated',
  'postmortem_drafted',
  'payouts_freeze_changed',
  'proposal_executed',
] as const;
export type TimelineKind = (typeof timelineKinds)[number];
