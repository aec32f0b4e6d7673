import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { Type } from 'typebox';
import { Value } from 'typebox/value';
import {
  completeReminder,
  getEscalationPolicy,
  getEscalationSteps,
  getReminders,
  remindersPageMax,
  setEscalationPolicy,
  stepsPageMax,
} from '../incidents/escalation.ts';
import { type PolicyStep, policyReasonLengthMax, policyStepsMax } from '../incidents/escalation-policy.ts';
import { PolicyStepSchema } from '../incidents/escalation-routes.ts';
import { manualReminderKinds, type ReminderView } from '../incidents/reminders.ts';
import { isFreeText } from '../platform/http/schemas.ts';
import { isUuid } from '../platform/ids.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';

/**
 * `settledesk incident policy show|set`, `incident escalation ID`, `incident reminders ID` and
 * `incident reminder done ID KIND`: the same service functions as the routes.
 */

/** A policy file is the same JSON as the body of PUT /internal/incident-policies/escalation, reason aside. */
const PolicyFileSchema = Type.Object({ steps: Type.Array(PolicyStepSchema, { maxItems: policyStepsMax }) });
const policyFileBytesMax = 64 * 1_024;

async function readPolicyFile(path: string): Promise<PolicyStep[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${path}: ${(error as Error).message}`);
  }
  if (text.length > policyFileBytesMax)
    throw new CliError(`${path} is larger than ${policyFileBytesMax} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CliError(`${path} is not JSON: ${(error as Error).message}`);
  }
  const problem = [...Value.Errors(PolicyFileSchema, parsed)][0];
  if (problem) {
    throw new CliError(
      `${path}: ${problem.instancePath || '/'} ${problem.message}; see docs/incidents.md#escalation`,
    );
  }
  return (parsed as { steps: PolicyStep[] }).steps;
}

function incidentIdOf(id: string): string {
  if (!isUuid(id)) throw new CliError('the incident id must be a uuid');
  return id;
}

function reminderLine(reminder: ReminderView): string {
  const state = reminder.doneAt
    ? `done ${reminder.doneAt} (${reminder.doneReason}${reminder.doneBy ? ` by ${reminder.doneBy}` : ''})`
    : reminder.overdue
      ? 'OVERDUE'
      : 'open';
  return `${reminder.kind.padEnd(20)} due ${reminder.dueAt}  ${state}`;
}

export function registerEscalationCommands(incident: Command, output: () => Output): void {
  const policy = incident.command('policy').description('the escalation policy frozen onto new incidents');
  policy
    .command('show')
    .description('the policy in force, with its version')
    .action(async () => {
      const view = await withRuntime({ migrate: false }, (runtime) => getEscalationPolicy(runtime.sql));
      print(output(), view, () =>
        [
          `version ${view.version} by ${view.createdBy} at ${view.createdAt}: ${view.reason}`,
          ...view.steps.map(
            (step, index) =>
              `  ${index + 1}. ${step.severities.join(',').padEnd(12)} after ${String(step.afterSeconds).padStart(6)}s → ${step.target}`,
          ),
        ].join('\n'),
      );
    });
  policy
    .command('set')
    .description(
      'store a new policy version from a JSON file ({"steps": [...]}); running incidents keep theirs',
    )
    .requiredOption('--file <path>', 'the policy as JSON')
    .requiredOption('--reason <text>', `why (≤ ${policyReasonLengthMax} characters)`)
    .option('--as <name>', 'who changes it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (options: { file: string; reason: string; as?: string }) => {
      const reason = options.reason;
      if (reason.trim() === '' || reason.length > policyReasonLengthMax || !isFreeText(reason)) {
        throw new CliError(`--reason must be 1 to ${policyReasonLengthMax} characters of text`);
      }
      const steps = await readPolicyFile(options.file);
      const actor = { name: operatorName(options.as), requestId: undefined };
      const view = await withRuntime({ migrate: false }, (runtime) =>
        setEscalationPolicy(runtime.sql, { steps, reason: options.reason }, actor),
      );
      print(
        output(),
        view,
        () => `stored escalation policy version ${view.version} (${view.steps.length} steps)`,
      );
    });
  incident
    .command('escalation <id>')
    .description("the escalation steps frozen onto an incident, with each one's state")
    .action(async (id: string) => {
      const steps = await withRuntime({ migrate: false }, (runtime) =>
        getEscalationSteps(runtime.sql, incidentIdOf(id), undefined, stepsPageMax),
      );
      print(output(), steps, () =>
        steps.length === 0
          ? 'no escalation steps'
          : steps
              .map(
                (step) =>
                  `${String(step.position).padStart(2)}. ${step.target.padEnd(20)} due ${step.dueAt}  ${step.state} (${step.stateReason})`,
              )
              .join('\n'),
      );
    });
  incident
    .command('reminders <id>')
    .description('update reminders of an incident, open and done, oldest first')
    .action(async (id: string) => {
      const reminders = await withRuntime({ migrate: false }, (runtime) =>
        getReminders(runtime.sql, incidentIdOf(id), undefined, remindersPageMax),
      );
      print(output(), reminders, () =>
        reminders.length === 0 ? 'no reminders' : reminders.map(reminderLine).join('\n'),
      );
    });
  incident
    .command('reminder')
    .description('close a reminder that only a person can close')
    .command('done <id> <kind>')
    .description(`mark it done: ${manualReminderKinds.join(', ')}`)
    .option('--as <name>', 'who did it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (id: string, kind: string, options: { as?: string }) => {
      const manual = manualReminderKinds.find((candidate) => candidate === kind);
      if (!manual) throw new CliError(`the reminder kind must be one of ${manualReminderKinds.join(', ')}`);
      const actor = { name: operatorName(options.as), requestId: undefined };
      const open = await withRuntime({ migrate: false }, (runtime) =>
        completeReminder(runtime.sql, incidentIdOf(id), manual, actor),
      );
      print(output(), open, () => [`${kind} done`, ...open.map(reminderLine)].join('\n'));
    });
}
