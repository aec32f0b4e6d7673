import type { Command, Option } from 'commander';
import { simpleCommands, type Word } from './shell.ts';

/** One `settledesk …` invocation found in a cell or a code span, with what is wrong with it. */
export type CommandUse = { words: Word[]; line: number; problem: string | undefined };

// Words that may stand before the command itself in a simple command.
const prefixWords = new Set([
  'if',
  'then',
  'else',
  'elif',
  'do',
  'while',
  'until',
  '!',
  '{',
  'time',
  'exec',
  'command',
]);
const assignment = /^[A-Za-z_][A-Za-z0-9_]*=/;

/**
 * Every `settledesk` (or `npx settledesk`) invocation in a script, checked against the real
 * commander program. `prose` relaxes the check for code spans in running text, which show a
 * command's shape (`settledesk approvals approve ID`) without every required option.
 */
export function settledeskCommands(
  program: Command,
  script: string,
  firstLine: number,
  options: { prose: boolean },
): CommandUse[] {
  const uses: CommandUse[] = [];
  for (const simple of simpleCommands(script, firstLine)) {
    const args = settledeskArguments(simple.words);
    if (args === undefined) continue;
    uses.push({ words: args, line: simple.line, problem: checkInvocation(program, args, options.prose) });
  }
  return uses;
}

function settledeskArguments(words: readonly Word[]): Word[] | undefined {
  let index = 0;
  while (index < words.length) {
    const word = words[index]!;
    if (assignment.test(word.text) || (word.literal && prefixWords.has(word.text))) index++;
    else if (word.literal && word.text === 'timeout') index += 2;
    else if (word.literal && (word.text === 'npx' || word.text === 'xargs')) {
      const at = words.findIndex(
        (candidate, position) => position > index && candidate.text === 'settledesk',
      );
      if (at === -1) return undefined;
      index = at;
    } else break;
  }
  const head = words[index];
  if (head?.literal !== true || head.text !== 'settledesk') return undefined;
  return words.slice(index + 1);
}

// commander keeps whether a command has an action in a private field; a group such as
// `settledesk mode` has none and only prints its help, which in a runbook is a mistake.
function hasAction(command: Command): boolean {
  return (command as unknown as { _actionHandler: unknown })._actionHandler != null;
}

function findOption(chain: readonly Command[], flag: string): Option | undefined {
  for (let index = chain.length - 1; index >= 0; index--) {
    const option = chain[index]!.options.find(
      (candidate) => candidate.long === flag || candidate.short === flag,
    );
    if (option) return option;
  }
  return undefined;
}

function cleanProseWord(word: Word): Word | undefined {
  const text = word.text.replace(/^\[+|\]+$/g, '');
  if (text === '' || text.includes('…') || text.includes('...')) return undefined;
  return { text, literal: word.literal };
}

/** Why `settledesk ARGS` would not run as written, or undefined when it would. */
export function checkInvocation(
  program: Command,
  rawArgs: readonly Word[],
  prose: boolean,
): string | undefined {
  const chain: Command[] = [program];
  const positionals: Word[] = [];
  const given = new Set<Option>();
  const args: Word[] = [];
  let elided = false;
  for (const raw of rawArgs) {
    const word = prose ? cleanProseWord(raw) : raw;
    if (word === undefined) {
      elided = true;
      break;
    }
    args.push(word);
  }
  const where = () => chain.map((command) => command.name()).join(' ');
  let optionsEnded = false;
  for (let index = 0; index < args.length; index++) {
    const word = args[index]!;
    if (!optionsEnded && word.literal && word.text === '--') {
      optionsEnded = true;
      continue;
    }
    if (!optionsEnded && word.literal && /^-[^-\d]|^--./.test(word.text)) {
      const equals = word.text.indexOf('=');
      const flag = equals === -1 ? word.text : word.text.slice(0, equals);
      if (flag === '--help' || flag === '-h') return undefined;
      const option = findOption(chain, flag);
      if (!option) {
        const known = chain.at(-1)!.options.map((candidate) => candidate.long ?? candidate.short);
        return `unknown option ${flag} for "${where()}" (options: ${[...known, '--json'].join(', ')})`;
      }
      given.add(option);
      if (equals !== -1 || !(option.required || option.optional)) continue;
      const value = args[index + 1];
      if (value === undefined || (option.optional && value.text.startsWith('-'))) {
        if (option.required && !prose) return `option ${flag} of "${where()}" needs a value`;
        continue;
      }
      index++;
      if (value.literal && option.argChoices && !option.argChoices.includes(value.text))
        return `option ${flag} of "${where()}" takes ${option.argChoices.join(', ')}, not ${value.text}`;
      continue;
    }
    const current = chain.at(-1)!;
    if (positionals.length === 0 && current.commands.length > 0) {
      const sub = current.commands.find(
        (candidate) => candidate.name() === word.text || candidate.aliases().includes(word.text),
      );
      if (sub && word.literal) {
        chain.push(sub);
        continue;
      }
      if (!hasAction(current)) {
        const names = current.commands.map((candidate) => candidate.name()).join(', ');
        return `unknown command "${where()} ${word.text}" (commands: ${names})`;
      }
    }
    positionals.push(word);
  }
  // `settledesk --json …` in prose shows where the rest goes; only what is written is checked.
  if (elided) return undefined;
  return checkComplete(chain.at(-1)!, where(), positionals, given, prose);
}

function checkComplete(
  command: Command,
  where: string,
  positionals: readonly Word[],
  given: ReadonlySet<Option>,
  prose: boolean,
): string | undefined {
  if (command.commands.length > 0 && !hasAction(command))
    return `"${where}" needs a subcommand (${command.commands.map((sub) => sub.name()).join(', ')})`;
  const declared = command.registeredArguments;
  const variadic = declared.some((argument) => argument.variadic);
  if (!variadic && positionals.length > declared.length)
    return `too many arguments for "${where}": ${positionals.map((word) => word.text).join(' ')}`;
  if (prose) return undefined;
  const required = declared.filter((argument) => argument.required);
  if (positionals.length < required.length)
    return `"${where}" is missing argument <${required[positionals.length]!.name()}>`;
  const missing = command.options.filter((option) => option.mandatory && !given.has(option));
  if (missing.length > 0)
    return `"${where}" is missing required option ${missing.map((option) => option.long).join(', ')}`;
  return undefined;
}
