import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { renderAlertRules } from '../ops/alert-rules.ts';
import { OperatingError } from '../platform/errors.ts';
import { repositoryRoot } from '../runbooks/cells.ts';
import { CliError } from './context.ts';

export const alertRulesFile = join(repositoryRoot, 'ops', 'prometheus', 'alerts.yml');

export function registerAlertCommands(program: Command): void {
  const alerts = program.command('alerts').description('the Prometheus alerting rules in ops/prometheus');
  alerts
    .command('render')
    .description("the alerting rules with every runbook_url on this deployment's runbook base")
    .requiredOption(
      '--runbook-base <url>',
      'where the repository is browsed, up to and including the revision (…/blob/main/)',
    )
    .option('--rules <file>', 'the rules to render', alertRulesFile)
    .option('--output <file>', 'write the rules here instead of stdout')
    .action((options: { runbookBase: string; rules: string; output?: string }) => {
      if (!existsSync(options.rules)) throw new CliError(`no rules file ${options.rules}`);
      let rendered: string;
      try {
        rendered = renderAlertRules(readFileSync(options.rules, 'utf8'), options.runbookBase);
      } catch (error) {
        if (error instanceof OperatingError) throw new CliError(`${options.rules}: ${error.message}`);
        throw error;
      }
      if (options.output === undefined) process.stdout.write(rendered);
      else writeFileSync(options.output, rendered);
    });
}
