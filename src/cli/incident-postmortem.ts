import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { ActionItemStatus } from '../incidents/action-item-states.ts';
import {
  type ActionItemChange,
  type ActionItemView,
  actionItemOwnerLengthMax,
  actionItemReasonLengthMax,
  actionItemsPageMax,
  actionItemTitleLengthMax,
  addActionItem,
  changeActionItem,
  getPostmortemDraft,
  isCalendarDay,
  listActionItems,
  postmortemPartLengthMax,
  writePostmortem,
} from '../incidents/postmortem.ts';
import type { PostmortemParts } from '../incidents/postmortem-data.ts';
import { renderPostmortemMarkdown } from '../incidents/postmortem-markdown.ts';
import { isFreeText, isFreeTextLines } from '../platform/http/schemas.ts';
import { isUuid } from '../platform/ids.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { table } from './table.ts';

/**
 * `settledesk incident postmortem ID`, `incident postmortem-write ID` and `incident action …`:
 * the post-incident part of the CLI, through the same service functions as the routes.
 */

function incidentIdOf(text: string): string {
  if (!isUuid(text)) throw new CliError('the incident id must be a uuid');
  return text;
}

function textOf(option: string, text: string, lengthMax: number, lines = false): string {
  const valid = lines ? isFreeTextLines(text) : isFreeText(text);
  if (!valid || text.length < 1 || text.length > lengthMax) {
    throw new CliError(`${option} must be 1-${lengthMax} characters without control characters`);
  }
  return text;
}

function dayOf(text: string): string {
  if (!isCalendarDay(text)) throw new CliError('--due must be a day YYYY-MM-DD (UTC)');
  return text;
}

function limitOf(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > actionItemsPageMax) {
    throw new CliError(`--limit must be a whole number from 1 to ${actionItemsPageMax}`);
  }
  return limit;
}

function itemLine(item: ActionItemView): string[] {
  return [item.id, item.overdue ? 'OVERDUE' : item.status, item.dueOn, item.owner, item.title];
}

const itemHeaders = ['id', 'status', 'due', 'owner', 'title'];

function registerDraft(incident: Command, output: () => Output): void {
  incident
    .command('postmortem <id>')
    .description(
      'the postmortem draft in Markdown, from the record, its timeline and action items (writes nothing)',
    )
    .option('--output <file>', 'write the Markdown to this file instead of standard output')
    .action(async (id: string, options: { output?: string }) => {
      const draft = await withRuntime({ migrate: false }, (runtime) =>
        getPostmortemDraft(runtime.sql, incidentIdOf(id)),
      );
      const markdown = renderPostmortemMarkdown(draft);
      if (options.output !== undefined) {
        await writeFile(options.output, markdown, 'utf8');
        print(
          output(),
          { incidentId: draft.incident.id, file: options.output },
          () => `wrote ${options.output}`,
        );
        return;
      }
      if (output().json) print(output(), { ...draft, markdown }, () => markdown);
      else process.stdout.write(markdown);
    });
  incident
    .command('postmortem-write <id>')
    .description('write parts of the postmortem; parts not given keep their text')
    .option('--root-cause <text>', 'the root cause')
    .option('--went-well <text>', 'what went well')
    .option('--went-wrong <text>', 'what went wrong')
    .option('--lessons <text>', 'lessons learned')
    .option('--as <name>', 'who writes it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(
      async (
        id: string,
        options: { rootCause?: string; wentWell?: string; wentWrong?: string; lessons?: string; as?: string },
      ) => {
        const given: [keyof PostmortemParts, string, string | undefined][] = [
          ['rootCause', '--root-cause', options.rootCause],
          ['wentWell', '--went-well', options.wentWell],
          ['wentWrong', '--went-wrong', options.wentWrong],
          ['lessonsLearned', '--lessons', options.lessons],
        ];
        const parts: PostmortemParts = {};
        for (const [part, option, text] of given) {
          if (text !== undefined) parts[part] = textOf(option, text, postmortemPartLengthMax, true);
        }
        if (Object.keys(parts).length === 0) {
          throw new CliError('give at least one of --root-cause, --went-well, --went-wrong, --lessons');
        }
        const actor = { name: operatorName(options.as), requestId: undefined };
        const written = await withRuntime({ migrate: false }, (runtime) =>
          writePostmortem(runtime.sql, incidentIdOf(id), parts, actor),
        );
        print(output(), written, () => `postmortem of ${written.incidentId} updated by ${written.updatedBy}`);
      },
    );
}

async function changeItem(
  output: () => Output,
  id: string,
  itemId: string,
  change: ActionItemChange,
  as: string | undefined,
): Promise<void> {
  if (!isUuid(itemId)) throw new CliError('the action item id must be a uuid');
  const actor = { name: operatorName(as), requestId: undefined };
  const item = await withRuntime({ migrate: false }, (runtime) =>
    changeActionItem(runtime.sql, incidentIdOf(id), itemId, change, actor),
  );
  print(output(), item, () => table(itemHeaders, [itemLine(item)]));
}

function registerActions(incident: Command, output: () => Output): void {
  const action = incident
    .command('action')
    .description("an incident's action items (owner, due day, status)");
  action
    .command('add <id>')
    .description('add an open action item')
    .requiredOption('--title <text>', 'what is to be done')
    .requiredOption('--owner <name>', 'who does it')
    .requiredOption('--due <day>', 'due day, YYYY-MM-DD (UTC)')
    .option('--as <name>', 'who adds it')
    .action(async (id: string, options: { title: string; owner: string; due: string; as?: string }) => {
      const input = {
        title: textOf('--title', options.title, actionItemTitleLengthMax),
        owner: textOf('--owner', options.owner, actionItemOwnerLengthMax),
        dueOn: dayOf(options.due),
      };
      const actor = { name: operatorName(options.as), requestId: undefined };
      const item = await withRuntime({ migrate: false }, (runtime) =>
        addActionItem(runtime.sql, incidentIdOf(id), input, actor),
      );
      print(output(), item, () => table(itemHeaders, [itemLine(item)]));
    });
  action
    .command('list <id>')
    .description('action items, oldest first; OVERDUE marks open ones past their due day')
    .option('--limit <n>', `at most this many (≤ ${actionItemsPageMax})`, '100')
    .action(async (id: string, options: { limit: string }) => {
      const limit = limitOf(options.limit);
      const { items } = await withRuntime({ migrate: false }, (runtime) =>
        listActionItems(runtime.sql, incidentIdOf(id), undefined, limit),
      );
      print(output(), items, () => table(itemHeaders, items.map(itemLine)));
    });
  action
    .command('update <id> <item>')
    .description("change an action item's owner, due day or title")
    .option('--title <text>', 'what is to be done')
    .option('--owner <name>', 'who does it')
    .option('--due <day>', 'due day, YYYY-MM-DD (UTC)')
    .option('--as <name>', 'who changes it')
    .action(
      async (
        id: string,
        itemId: string,
        options: { title?: string; owner?: string; due?: string; as?: string },
      ) => {
        const change = {
          title:
            options.title === undefined
              ? undefined
              : textOf('--title', options.title, actionItemTitleLengthMax),
          owner:
            options.owner === undefined
              ? undefined
              : textOf('--owner', options.owner, actionItemOwnerLengthMax),
          dueOn: options.due === undefined ? undefined : dayOf(options.due),
        };
        if (Object.values(change).every((value) => value === undefined)) {
          throw new CliError('give at least one of --title, --owner, --due');
        }
        await changeItem(output, id, itemId, change, options.as);
      },
    );
  const moves: [string, ActionItemStatus, string][] = [
    ['done', 'done', 'mark an action item done'],
    ['cancel', 'cancelled', 'cancel an action item (it will not be done)'],
    ['reopen', 'open', 'reopen a done or cancelled action item'],
  ];
  for (const [name, status, description] of moves) {
    action
      .command(`${name} <id> <item>`)
      .description(description)
      .option('--reason <text>', 'why')
      .option('--as <name>', 'who does it')
      .action(async (id: string, itemId: string, options: { reason?: string; as?: string }) => {
        const reason =
          options.reason === undefined
            ? undefined
            : textOf('--reason', options.reason, actionItemReasonLengthMax);
        await changeItem(output, id, itemId, { status, reason }, options.as);
      });
  }
}

export function registerPostmortemCommands(incident: Command, output: () => Output): void {
  registerDraft(incident, output);
  registerActions(incident, output);
}
