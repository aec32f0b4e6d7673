import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  type CellResult,
  cellTimeoutMsDefault,
  cellTimeoutMsMax,
  parseRunbook,
  type Runbook,
  RunbookError,
  repositoryRoot,
  runCells,
} from '../runbooks/cells.ts';
import { CliError, type Output, print } from './context.ts';

export const runbookDirectory = join(repositoryRoot, 'docs', 'runbooks');

/** `FILE` is a path, or a runbook's name in docs/runbooks with or without `.md`. */
function resolveRunbook(file: string): string {
  const candidates = [file, join(runbookDirectory, file), join(runbookDirectory, `${file}.md`)];
  const found = candidates.find((candidate) => candidate.endsWith('.md') && existsSync(candidate));
  if (!found)
    throw new CliError(`no runbook ${file} (looked in ${runbookDirectory}; see settledesk runbook list)`);
  return resolve(found);
}

function load(path: string): Runbook {
  try {
    return parseRunbook(path);
  } catch (error) {
    if (error instanceof RunbookError) throw new CliError(error.message);
    throw error;
  }
}

function describeCells(runbook: Runbook, indent: string): string[] {
  return runbook.cells.map(
    (cell) =>
      `${indent}${cell.name}${cell.mutating ? ' (mutating)' : ''}  [${cell.language}, line ${cell.line}]`,
  );
}

function describeRunbook(runbook: Runbook): string {
  const sections = runbook.sections.map(
    (section) => `${'  '.repeat(section.level - 1)}${section.heading}  #${section.anchor}`,
  );
  const cells = runbook.cells.flatMap((cell) => [
    '',
    `${cell.name}${cell.mutating ? ' (mutating: needs --yes)' : ' (read-only)'}  line ${cell.line}`,
    ...cell.code.split('\n').map((line) => `  ${line}`),
  ]);
  return [runbook.title, '', 'sections:', ...sections, '', `cells (${runbook.cells.length}):`, ...cells].join(
    '\n',
  );
}

function collectCell(name: string, previous: string[]): string[] {
  return [...previous, name];
}

function parseTimeout(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > cellTimeoutMsMax)
    throw new CliError(`--timeout-ms must be an integer between 1 and ${cellTimeoutMsMax}`);
  return value;
}

export function registerRunbookCommands(program: Command, output: () => Output): void {
  const runbook = program
    .command('runbook')
    .description('the runbooks in docs/runbooks and their code cells');
  runbook
    .command('list')
    .description('every runbook with its title and cells')
    .action(() => {
      const problems: string[] = [];
      const runbooks = readdirSync(runbookDirectory)
        .filter((name) => name.endsWith('.md'))
        .sort()
        .flatMap((name) => {
          try {
            return [load(join(runbookDirectory, name))];
          } catch (error) {
            if (!(error instanceof CliError)) throw error;
            problems.push(error.message);
            return [];
          }
        });
      const listing = runbooks.map((entry) => ({
        file: entry.file.slice(runbookDirectory.length + 1),
        title: entry.title,
        cells: entry.cells.map((cell) => ({ name: cell.name, mutating: cell.mutating })),
      }));
      print(output(), listing, () =>
        runbooks
          .map((entry, index) =>
            [`${listing[index]!.file}: ${entry.title}`, ...describeCells(entry, '  ')].join('\n'),
          )
          .join('\n'),
      );
      if (problems.length > 0) throw new CliError(`runbooks that cannot be read:\n${problems.join('\n')}`);
    });
  runbook
    .command('show')
    .description('the sections (with their anchors) and the cells of one runbook')
    .argument('<file>', 'a runbook name (horizon-outage) or path')
    .action((file: string) => {
      const parsed = load(resolveRunbook(file));
      print(output(), parsed, () => describeRunbook(parsed));
    });
  runbook
    .command('run')
    .description('run cells in order with bash -euo pipefail, carrying exported variables from cell to cell')
    .argument('<file>', 'a runbook name (horizon-outage) or path')
    .requiredOption(
      '--cell <name>',
      'a cell to run; repeat to run several, in the order given',
      collectCell,
      [],
    )
    .option('--yes', 'allow mutating cells to run')
    .option('--timeout-ms <ms>', `time limit per cell (default ${cellTimeoutMsDefault})`, parseTimeout)
    .action(async (file: string, options: { cell: string[]; yes?: boolean; timeoutMs?: number }) => {
      const parsed = load(resolveRunbook(file));
      const json = output().json;
      const results = await runCells(parsed, options.cell, {
        yes: options.yes ?? false,
        timeoutMs: options.timeoutMs ?? cellTimeoutMsDefault,
        ...(json ? {} : liveOutput),
      }).catch((error: unknown) => {
        if (error instanceof RunbookError) throw new CliError(error.message);
        throw error;
      });
      if (json) print(output(), results, () => '');
      reportOutcome(parsed, options.cell, results, options.timeoutMs ?? cellTimeoutMsDefault);
    });
}

const liveOutput = {
  onCellStart: (name: string) => process.stderr.write(`--- cell ${name}\n`),
  onOutput: (_cell: string, stream: 'stdout' | 'stderr', chunk: string) =>
    (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
};

function reportOutcome(
  runbook: Runbook,
  names: readonly string[],
  results: readonly CellResult[],
  timeoutMs: number,
): void {
  const failed = results.find((result) => result.code !== 0);
  if (failed) {
    const line = runbook.cells.find((cell) => cell.name === failed.name)?.line;
    const why = failed.timedOut ? `timed out after ${timeoutMs} ms` : `exited with status ${failed.code}`;
    const skipped = names.slice(results.length);
    throw new CliError(
      `cell "${failed.name}" (${runbook.file}:${line}) ${why}${skipped.length > 0 ? `; not run: ${skipped.join(', ')}` : ''}`,
    );
  }
  process.stderr.write(
    `--- ${results.length} cell(s) passed: ${results.map((result) => result.name).join(', ')}\n`,
  );
}
