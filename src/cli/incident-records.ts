import type { Command } from 'commander';
import type { TSchema } from 'typebox';
import { incidentsPageMax, nextIncidentCursor, timelinePageDefault } from '../incidents/routes.ts';
import {
  DeclareBody,
  DetailsBody,
  NoteBody,
  RoleBody,
  SeverityBody,
  StatusBody,
} from '../incidents/schemas.ts';
import {
  acknowledgeIncident,
  addNote,
  assignRole,
  changeDetails,
  changeSeverity,
  changeStatus,
  declareIncident,
  getIncidentDetail,
  getTimeline,
  type IncidentDetail,
  type IncidentView,
  listIncidents,
  type RoleView,
  renounceIncidentRole,
  type TimelineEventView,
  timelinePageMax,
} from '../incidents/service.ts';
import {
  type IncidentRole,
  incidentRoles,
  type Severity,
  type Status,
  severities,
  statuses,
} from '../incidents/states.ts';
import type { Sql } from '../platform/db/types.ts';
import { decodeCursor } from '../platform/http/cursor.ts';
import { fieldErrors, validatorCompiler } from '../platform/http/validation.ts';
import { isUuid } from '../platform/ids.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { table } from './table.ts';

/**
 * `settledesk incident declare|list|show|status|severity|update|ack|role|note|timeline`: the
 * records part of the incident commands, through the same service functions and the same input
 * schemas as /internal/incidents, straight from the database.
 */

/** Checks `value` against the route's body schema, so the CLI refuses exactly what the API refuses. */
function checked<T>(schema: TSchema, value: unknown): T {
  const validate = validatorCompiler({ schema, httpPart: 'body', method: 'POST', url: '' }) as unknown as {
    (data: unknown): boolean;
    errors?: Parameters<typeof fieldErrors>[0] | null;
  };
  if (!validate(value)) {
    const problems = fieldErrors(validate.errors ?? [], 'input').map(
      (error) => `${error.field.replace(/^input\./, '--')} ${error.message}`,
    );
    throw new CliError(problems.join('; '));
  }
  return value as T;
}

function incidentId(id: string): string {
  if (!isUuid(id)) throw new CliError(`${id} is not an incident id (a lowercase uuid)`);
  return id;
}

function oneOf<T extends string>(values: readonly T[], value: string, what: string): T {
  if (!(values as readonly string[]).includes(value))
    throw new CliError(`${what} must be one of ${values.join(', ')}`);
  return value as T;
}

function run<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
  return withRuntime({ migrate: false }, (runtime) => work(runtime.sql));
}

function actor(as: string | undefined) {
  return { name: operatorName(as), requestId: undefined };
}

function targetText(name: string, target: IncidentView['targets']['respond']): string {
  const state = target.met === null ? 'pending' : target.met ? 'met' : 'NOT MET';
  const minutes = target.targetSeconds / 60;
  const at = target.at === null ? '' : `, at ${target.at}`;
  return `${name} within ${minutes} min: ${state} (due ${target.dueAt}${at})`;
}

function incidentText(incident: IncidentView): string {
  return [
    `incident ${incident.number} ${incident.id}: ${incident.title}`,
    `severity:     ${incident.severity}`,
    `status:       ${incident.status} (${incident.statusReason})`,
    `components:   ${incident.components.join(', ') || '-'}`,
    `impact:       ${incident.impact || '-'}`,
    `declared:     ${incident.declaredAt} by ${incident.declaredBy} (${incident.source})`,
    `acknowledged: ${incident.acknowledgedAt ? `${incident.acknowledgedAt} by ${incident.acknowledgedBy}` : 'not yet'}`,
    `resolved:     ${incident.resolvedAt ?? 'not yet'}${incident.reopenedCount > 0 ? ` (reopened ${incident.reopenedCount}×)` : ''}`,
    `targets:      ${targetText('respond', incident.targets.respond)}`,
    `              ${targetText('resolve', incident.targets.resolve)}`,
  ].join('\n');
}

function rolesText(roles: readonly RoleView[]): string {
  return table(
    ['role', 'subject', 'assumed', 'renounced'],
    roles.map((role) => [role.role, role.subject, role.assumedAt, role.renouncedAt ?? 'holds it']),
  );
}

function timelineText(events: readonly TimelineEventView[]): string {
  return table(
    ['id', 'at', 'kind', 'source', 'actor', 'summary'],
    events.map((event) => [event.id, event.at, event.kind, event.source, event.actor, event.summary]),
  );
}

function detailText(detail: IncidentDetail): string {
  const shown = detail.timeline.recent.length;
  const snapshots = table(
    ['snapshot', 'taken', 'by'],
    detail.snapshots.map((snapshot) => [snapshot.id, snapshot.takenAt, snapshot.takenBy]),
  );
  return [
    incidentText(detail.incident),
    '',
    'roles:',
    rolesText(detail.roles),
    '',
    `timeline (newest ${shown} of ${detail.timeline.count}; settledesk incident timeline ${detail.incident.id}):`,
    timelineText(detail.timeline.recent),
    '',
    'snapshots:',
    snapshots,
    '',
    'reminders:',
    table(
      ['kind', 'due', 'overdue'],
      detail.reminders.map((reminder) => [
        reminder.kind,
        reminder.dueAt,
        reminder.overdue ? 'OVERDUE' : 'no',
      ]),
    ),
  ].join('\n');
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

type ListOptions = { status?: string; severity?: string; open?: boolean; limit: string; cursor?: string };
type DetailOptions = { title?: string; impact?: string; component?: string[]; as?: string };

export function registerIncidentRecordCommands(incident: Command, output: () => Output): void {
  incident
    .command('declare')
    .description('declare an incident; you have acknowledged it')
    .requiredOption('--title <text>', 'what is wrong, in a line')
    .requiredOption('--severity <P0..P3>', `one of ${severities.join(', ')}`)
    .option('--component <name>', 'an affected component (repeat for several)', collect)
    .option('--impact <text>', 'who is affected and how')
    .option('--as <name>', 'who is acting (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (options: DetailOptions & { severity: string }) => {
      const body = checked<{ title: string; severity: Severity; components?: string[]; impact?: string }>(
        DeclareBody,
        {
          title: options.title,
          severity: options.severity,
          ...(options.component ? { components: options.component } : {}),
          ...(options.impact === undefined ? {} : { impact: options.impact }),
        },
      );
      const view = await run((sql) => declareIncident(sql, body, actor(options.as)));
      print(output(), view, () => incidentText(view));
    });
  incident
    .command('list')
    .description('incidents, newest first')
    .option('--status <status>', `one of ${statuses.join(', ')}`)
    .option('--severity <P0..P3>', `one of ${severities.join(', ')}`)
    .option('--open', 'only unresolved incidents')
    .option('--limit <n>', `at most ${incidentsPageMax}`, '50')
    .option('--cursor <cursor>', 'the nextCursor of the previous page')
    .action(async (options: ListOptions) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > incidentsPageMax)
        throw new CliError(`--limit must be an integer from 1 to ${incidentsPageMax}`);
      const filter = {
        status: options.status === undefined ? undefined : oneOf(statuses, options.status, '--status'),
        severity:
          options.severity === undefined ? undefined : oneOf(severities, options.severity, '--severity'),
        open: options.open,
      };
      const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor, '--cursor');
      const { rows, items } = await run((sql) => listIncidents(sql, filter, after, limit));
      const nextCursor = nextIncidentCursor(rows, limit);
      print(output(), { items, nextCursor }, () =>
        [
          table(
            ['number', 'id', 'severity', 'status', 'declared', 'title'],
            items.map((item) => [
              String(item.number),
              item.id,
              item.severity,
              item.status,
              item.declaredAt,
              item.title,
            ]),
          ),
          ...(nextCursor ? [`more: --cursor ${nextCursor}`] : []),
        ].join('\n'),
      );
    });
  incident
    .command('show <id>')
    .description('the record with its targets met or not, roles, the newest timeline events and snapshots')
    .action(async (id: string) => {
      const detail = await run((sql) => getIncidentDetail(sql, incidentId(id)));
      print(output(), detail, () => detailText(detail));
    });
  incident
    .command('status <id> <status>')
    .description(`move the incident to ${statuses.join(', ')} (resolved → investigating reopens)`)
    .option('--reason <text>', 'why (kept on the timeline)')
    .option('--as <name>', 'who is acting')
    .action(async (id: string, status: string, options: { reason?: string; as?: string }) => {
      const body = checked<{ to: Status; reason?: string }>(StatusBody, {
        to: oneOf(statuses, status, 'status'),
        ...(options.reason === undefined ? {} : { reason: options.reason }),
      });
      const view = await run((sql) =>
        changeStatus(sql, incidentId(id), body.to, body.reason, actor(options.as)),
      );
      print(output(), view, () => incidentText(view));
    });
  incident
    .command('severity <id> <severity>')
    .description(`change the severity to one of ${severities.join(', ')}`)
    .option('--reason <text>', 'why (kept on the timeline)')
    .option('--as <name>', 'who is acting')
    .action(async (id: string, severity: string, options: { reason?: string; as?: string }) => {
      const body = checked<{ severity: Severity; reason?: string }>(SeverityBody, {
        severity: oneOf(severities, severity, 'severity'),
        ...(options.reason === undefined ? {} : { reason: options.reason }),
      });
      const view = await run((sql) =>
        changeSeverity(sql, incidentId(id), body.severity, body.reason, actor(options.as)),
      );
      print(output(), view, () => incidentText(view));
    });
  incident
    .command('update <id>')
    .description('change the title, impact or components (the timeline keeps before and after)')
    .option('--title <text>', 'the new title')
    .option('--impact <text>', 'the new impact statement')
    .option('--component <name>', 'the affected components, replacing the list (repeat for several)', collect)
    .option('--as <name>', 'who is acting')
    .action(async (id: string, options: DetailOptions) => {
      if (options.title === undefined && options.impact === undefined && options.component === undefined)
        throw new CliError('give at least one of --title, --impact, --component');
      const body = checked<{ title?: string; impact?: string; components?: string[] }>(DetailsBody, {
        ...(options.title === undefined ? {} : { title: options.title }),
        ...(options.impact === undefined ? {} : { impact: options.impact }),
        ...(options.component ? { components: options.component } : {}),
      });
      const view = await run((sql) => changeDetails(sql, incidentId(id), body, actor(options.as)));
      print(output(), view, () => incidentText(view));
    });
  incident
    .command('ack <id>')
    .description('acknowledge an incident opened by an alert (again: no change)')
    .option('--as <name>', 'who is acting')
    .action(async (id: string, options: { as?: string }) => {
      const view = await run((sql) => acknowledgeIncident(sql, incidentId(id), actor(options.as)));
      print(output(), view, () => incidentText(view));
    });
  incident
    .command('role <id> <role> [subject]')
    .description(`give ${incidentRoles.join(' or ')} to subject, or end its holder's term with --renounce`)
    .option('--renounce', "end the current holder's term")
    .option('--as <name>', 'who is acting')
    .action(
      async (
        id: string,
        roleText: string,
        subject: string | undefined,
        options: { renounce?: boolean; as?: string },
      ) => {
        const role = oneOf<IncidentRole>(incidentRoles, roleText, 'role');
        if (options.renounce === (subject !== undefined))
          throw new CliError('name a subject to give the role to, or --renounce (not both)');
        const roles = await run((sql) =>
          subject === undefined
            ? renounceIncidentRole(sql, incidentId(id), role, actor(options.as))
            : assignRole(
                sql,
                incidentId(id),
                role,
                checked<{ subject: string }>(RoleBody, { subject }).subject,
                actor(options.as),
              ),
        );
        print(output(), { roles }, () => rolesText(roles));
      },
    );
  incident
    .command('note <id> <text>')
    .description('add a note to the timeline')
    .option('--as <name>', 'who is acting')
    .action(async (id: string, text: string, options: { as?: string }) => {
      const body = checked<{ text: string }>(NoteBody, { text });
      const event = await run((sql) => addNote(sql, incidentId(id), body.text, actor(options.as)));
      print(output(), event, () => timelineText([event]));
    });
  incident
    .command('timeline <id>')
    .description('the whole timeline, oldest first, paged by event id')
    .option('--after <event-id>', 'start after this event')
    .option('--limit <n>', `at most ${timelinePageMax}`, String(timelinePageDefault))
    .action(async (id: string, options: { after?: string; limit: string }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > timelinePageMax)
        throw new CliError(`--limit must be an integer from 1 to ${timelinePageMax}`);
      if (options.after !== undefined && !/^[0-9]{1,18}$/.test(options.after))
        throw new CliError('--after must be an event id');
      const after = options.after === undefined ? undefined : BigInt(options.after);
      const items = await run((sql) => getTimeline(sql, incidentId(id), after, limit));
      const nextAfter = items.length === limit ? (items.at(-1)?.id ?? null) : null;
      print(output(), { items, nextAfter }, () =>
        [timelineText(items), ...(nextAfter ? [`more: --after ${nextAfter}`] : [])].join('\n'),
      );
    });
}
