import { DomainError } from '../platform/errors.ts';
import { type Severity, severities } from './states.ts';

/**
 * The escalation policy as data: ordered, timed steps, each for the severities it applies to.
 * Stored by version (`incident_escalation_policies`); an incident keeps the version it was
 * declared under (src/incidents/escalation-steps.ts).
 */

export const policyStepsMax = 20;
/** A step earlier than a minute would fire before anyone could act; a week is past every target. */
export const stepAfterSecondsMin = 60;
export const stepAfterSecondsMax = 7 * 86_400;
export const targetLengthMax = 60;
export const targetPattern = '^[a-z][a-z0-9_.-]*$';
export const policyReasonLengthMax = 500;

export type PolicyStep = { severities: Severity[]; afterSeconds: number; target: string };

export type PolicyView = {
  version: number;
  steps: PolicyStep[];
  reason: string;
  createdBy: string;
  createdAt: string;
};

function invalid(detail: string, field: string): DomainError {
  return new DomainError('incidents/escalation-policy-invalid', detail, {
    errors: [{ field, message: detail }],
  });
}

/**
 * What the schema cannot say: each severity's steps come in the order they fire (afterSeconds
 * strictly increasing), so `position` is also the order of escalation; and a step names each
 * severity once. Throws `incidents/escalation-policy-invalid` naming the first bad step.
 */
export function checkPolicySteps(steps: readonly PolicyStep[]): void {
  if (steps.length > policyStepsMax) {
    throw invalid(`a policy has at most ${policyStepsMax} steps`, 'body.steps');
  }
  const lastAfter = new Map<Severity, number>();
  steps.forEach((step, index) => {
    const field = `body.steps.${index}`;
    if (new Set(step.severities).size !== step.severities.length) {
      throw invalid(`step ${index + 1} names a severity twice`, `${field}.severities`);
    }
    if (step.severities.some((severity) => !severities.includes(severity))) {
      throw invalid(`step ${index + 1} names a severity other than ${severities.join(', ')}`, field);
    }
    if (step.afterSeconds < stepAfterSecondsMin || step.afterSeconds > stepAfterSecondsMax) {
      throw invalid(
        `step ${index + 1}: afterSeconds must be between ${stepAfterSecondsMin} and ${stepAfterSecondsMax}`,
        `${field}.afterSeconds`,
      );
    }
    if (!new RegExp(targetPattern).test(step.target) || step.target.length > targetLengthMax) {
      throw invalid(`step ${index + 1}: target must match ${targetPattern}`, `${field}.target`);
    }
    for (const severity of step.severities) {
      const previous = lastAfter.get(severity);
      if (previous !== undefined && step.afterSeconds <= previous) {
        throw invalid(
          `step ${index + 1} fires for ${severity} at ${step.afterSeconds}s, not after the ${severity} step before it (${previous}s): list each severity's steps in the order they fire`,
          `${field}.afterSeconds`,
        );
      }
      lastAfter.set(severity, step.afterSeconds);
    }
  });
}
