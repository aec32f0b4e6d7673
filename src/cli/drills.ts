import type { Command } from 'commander';
import { DrillFailure, runDrill } from '../drills/harness.ts';
import { drills, findDrill } from '../drills/registry.ts';
import { CliError, type Output, print } from './context.ts';

/** `settledesk drill list|run NAME`: the automated incident drills of src/drills/. */
export function registerDrillCommands(program: Command, output: () => Output): void {
  const drill = program
    .command('drill')
    .description(
      'automated incident drills: break something on purpose, run its runbook, check money is intact',
    );
  drill
    .command('list')
    .description('every drill, the runbook it runs and what it breaks')
    .action(() => {
      const list = drills.map(({ name, runbook, description }) => ({
        name,
        runbook: `docs/runbooks/${runbook}`,
        description,
      }));
      print(output(), list, () =>
        list.map((entry) => `${entry.name}  ${entry.runbook}\n  ${entry.description}`).join('\n'),
      );
    });
  drill
    .command('run <name>')
    .description('run one drill; exits 1 naming the runbook cell (or step) that did not do its job')
    .action(async (name: string) => {
      const found = findDrill(name);
      if (!found)
        throw new CliError(
          `no drill named "${name}" (drills: ${drills.map((entry) => entry.name).join(', ')})`,
        );
      const json = output().json;
      // With --json, stdout carries only the report; the live steps go to stderr.
      const live = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
      try {
        const report = await runDrill(found, { print: live });
        print(output(), report, () => `drill ${report.drill} passed in ${report.durationMs} ms`);
      } catch (error) {
        if (error instanceof DrillFailure) throw new CliError(`drill ${name} failed: ${error.message}`);
        throw error;
      }
    });
}
