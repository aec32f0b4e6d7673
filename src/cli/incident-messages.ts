import type { Command } from 'commander';
import type { ComponentStatusRow } from '../incidents/message-data.ts';
import {
  type CommunicationsSettings,
  communicationSettings,
  listMessages,
  type MessageInput,
  type MessagePiiMatch,
  type MessageView,
  messagesPageMax,
  type PreviewView,
  type Publisher,
  previewMessage,
  publishMessage,
} from '../incidents/messages.ts';
import { type Status, statuses } from '../incidents/states.ts';
import {
  type ComponentStatus,
  componentStatuses,
  type MessageKind,
  messageKinds,
  messageTemplates,
  placeholders,
  type TemplateName,
  templateNames,
} from '../incidents/templates.ts';
import type { Sql } from '../platform/db/types.ts';
import { parseDurationSeconds } from '../platform/duration.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';

/**
 * `settledesk incident message …`: preview, publish and list an incident's status-page and
 * customer messages through the same service as `/internal/incidents/{id}/messages`. The CLI
 * reaches the database directly, so it acts with the operator role.
 */

type MessageOptions = {
  kind: string;
  template?: string;
  text?: string;
  title?: string;
  status?: string;
  component: string[];
  eta?: string;
  as?: string;
};

function oneOf<T extends string>(option: string, values: readonly T[], text: string): T {
  const found = values.find((value) => value === text);
  if (found === undefined) throw new CliError(`${option} must be one of ${values.join(', ')}`);
  return found;
}

function collectComponent(text: string, previous: string[]): string[] {
  return [...previous, text];
}

function componentOf(text: string): ComponentStatusRow {
  const [component = '', status = ''] = text.split('=');
  if (component === '' || status === '') {
    throw new CliError(`--component must be name=status, status one of ${componentStatuses.join(', ')}`);
  }
  return { component, status: oneOf<ComponentStatus>('--component status', componentStatuses, status) };
}

/** `30m`, `2h` from now, or an ISO 8601 time such as 2026-12-06T15:30:00Z. */
export function etaOf(text: string, now: Date = new Date()): Date {
  const seconds = parseDurationSeconds(text.replace(/^\+/, ''));
  if (seconds !== undefined) return new Date(now.getTime() + seconds * 1_000);
  const at = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)
    ? new Date(text)
    : undefined;
  if (at === undefined || Number.isNaN(at.getTime())) {
    throw new CliError('--eta must be a duration from now (30m, 2h) or an ISO time (2026-12-06T15:30:00Z)');
  }
  return at;
}

function inputOf(options: MessageOptions): MessageInput {
  return {
    kind: oneOf<MessageKind>('--kind', messageKinds, options.kind),
    status: options.status === undefined ? undefined : oneOf<Status>('--status', statuses, options.status),
    template:
      options.template === undefined
        ? undefined
        : oneOf<TemplateName>('--template', templateNames, options.template),
    title: options.title,
    text: options.text,
    components: options.component.map(componentOf),
    eta: options.eta === undefined ? undefined : etaOf(options.eta),
  };
}

function idOf(text: string): string {
  if (!isUuid(text)) throw new CliError('the incident id must be a uuid');
  return text;
}

function matchLines(matches: readonly MessagePiiMatch[]): string {
  return matches
    .map(
      (match) =>
        `  ${match.kind} in the ${match.field} at ${match.offset}: "${match.text}" (${match.reason})`,
    )
    .join('\n');
}

function messageText(message: PreviewView['message'] | MessageView): string {
  const components = message.components.map((entry) => `${entry.component}=${entry.status}`).join(' ');
  return [
    `[${message.kind}, ${message.status}] ${message.title}`,
    message.body,
    ...(components === '' ? [] : [`components: ${components}`]),
  ].join('\n');
}

function withMessageOptions(command: Command): Command {
  return command
    .option('--kind <kind>', `one of ${messageKinds.join(', ')}`, 'status_page')
    .option('--template <name>', `one of ${templateNames.join(', ')} (see: incident message templates)`)
    .option('--text <text>', 'free text instead of a template; may use the same {placeholders}')
    .option('--title <title>', "with --text: the title (default: the incident's title)")
    .option('--status <status>', `one of ${statuses.join(', ')} (default: the incident's status)`)
    .option(
      '--component <name=status>',
      `a component's status (repeat): ${componentStatuses.join(', ')}`,
      collectComponent,
      [],
    )
    .option('--eta <when>', 'next update or fix: 30m, 2h, or an ISO time')
    .option('--as <name>', 'who publishes (default: SETTLEDESK_OPERATOR or the OS user)');
}

/** Runs a service function on the message the options describe, as the operator `--as` names. */
function withMessage<T>(
  id: string,
  options: MessageOptions,
  work: (
    sql: Sql,
    id: string,
    input: MessageInput,
    settings: CommunicationsSettings,
    publisher: Publisher,
  ) => Promise<T>,
): Promise<T> {
  const publisher = { name: operatorName(options.as), role: 'operator' as const, requestId: undefined };
  const input = inputOf(options);
  return withRuntime({ migrate: false }, (runtime) =>
    work(runtime.sql, idOf(id), input, communicationSettings(runtime.config.communications), publisher),
  );
}

export function registerIncidentMessageCommands(incident: Command, output: () => Output): void {
  const message = incident
    .command('message')
    .description('status-page and customer messages, checked for personal data before publishing');
  withMessageOptions(
    message
      .command('preview <id>')
      .description('render and check a message without publishing it; exits 1 when it would be refused'),
  ).action(async (id: string, options: MessageOptions) => {
    const preview = await withMessage(id, options, previewMessage);
    print(output(), preview, () =>
      preview.publishable
        ? `${messageText(preview.message)}\n\npublishable: no personal data found`
        : `${messageText(preview.message)}\n\nnot publishable:\n${matchLines(preview.pii)}`,
    );
    if (!preview.publishable) process.exitCode = 1;
  });
  withMessageOptions(
    message
      .command('publish <id>')
      .description('publish a message (refused, and nothing stored, when it contains personal data)'),
  ).action(async (id: string, options: MessageOptions) => {
    const published = await withMessage(id, options, publishMessage).catch((error: unknown) => {
      if (error instanceof DomainError && error.type === 'incidents/pii-detected') {
        const matches = (error.extensions.matches ?? []) as MessagePiiMatch[];
        throw new CliError(
          `not published: the message contains personal data or secrets\n${matchLines(matches)}`,
        );
      }
      throw error;
    });
    print(
      output(),
      published,
      () => `published ${published.id} at ${published.publishedAt}\n${messageText(published)}`,
    );
  });
  message
    .command('list <id>')
    .description("an incident's published messages, newest first")
    .option('--limit <n>', `at most this many (≤ ${messagesPageMax})`, '20')
    .action(async (id: string, options: { limit: string }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > messagesPageMax) {
        throw new CliError(`--limit must be a whole number from 1 to ${messagesPageMax}`);
      }
      const page = await withRuntime({ migrate: false }, (runtime) =>
        listMessages(runtime.sql, idOf(id), undefined, limit),
      );
      print(output(), page.items, () =>
        page.items.length === 0
          ? 'no messages published'
          : page.items
              .map((item) => `${item.publishedAt} by ${item.publishedBy}\n${messageText(item)}`)
              .join('\n\n'),
      );
    });
  message
    .command('templates')
    .description('the message templates and the placeholders they may use')
    .action(() => {
      const list = Object.entries(messageTemplates).map(([name, template]) => ({ name, ...template }));
      print(output(), { templates: list, placeholders }, () =>
        [
          ...list.map(
            (t) =>
              `${t.name} (${t.kinds.join(', ')}; ${t.statuses.join(', ')}): ${t.description}\n  ${t.title}\n  ${t.body}`,
          ),
          '',
          'placeholders:',
          ...Object.entries(placeholders).map(([name, meaning]) => `  {${name}}: ${meaning}`),
        ].join('\n'),
      );
    });
}
