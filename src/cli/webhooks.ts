import type { Command } from 'commander';
import { providerModes, selectDeadLetters, selectProviders } from '../deposits/data.ts';
import { rollbackRouting, setRouting } from '../deposits/intents.ts';
import { addProvider, setProviderMode } from '../deposits/providers.ts';
import { deadLettersPageMax } from '../deposits/routes.ts';
import { selectRouting } from '../deposits/routing-data.ts';
import { replayDeadLetter } from '../deposits/webhooks.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { registerProviderSecretCommands } from './provider-secrets.ts';

export function registerProviderCommands(program: Command, output: () => Output): void {
  const providers = program.command('providers').description('deposit providers and their modes');
  registerProviderSecretCommands(providers, output);
  providers
    .command('show')
    .description('every provider with its mode')
    .action(async () => {
      const rows = await withRuntime({ migrate: false }, (runtime) => selectProviders(runtime.sql));
      print(output(), rows, () =>
        rows
          .map(
            (row) =>
              `${row.name.padEnd(20)} ${row.kind.padEnd(9)} ${row.mode.padEnd(10)} since ${row.updatedAt.toISOString()} by ${row.updatedBy}`,
          )
          .join('\n'),
      );
    });
  providers
    .command('routing')
    .description('the default provider and the cohort routed elsewhere')
    .action(async () => {
      const routing = await withRuntime({ migrate: false }, (runtime) => selectRouting(runtime.sql));
      print(
        output(),
        routing,
        () =>
          `default ${routing.defaultProvider}${routing.cohortProvider ? `, ${routing.cohortPercent} % of accounts to ${routing.cohortProvider}` : ''} (since ${routing.updatedAt.toISOString()} by ${routing.updatedBy}: ${routing.reason})`,
      );
    });
  providers
    .command('route')
    .description('set the default provider and, optionally, a cohort of accounts routed to another one')
    .requiredOption('--default <name>', 'provider for everyone outside the cohort')
    .option('--cohort <name>', 'provider for the cohort')
    .option('--percent <n>', 'share of accounts in the cohort, 0-100', '0')
    .requiredOption('--reason <text>', 'why, for the audit log')
    .option('--as <name>', 'who changes it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(
      async (options: { default: string; cohort?: string; percent: string; reason: string; as?: string }) => {
        const percent = Number(options.percent);
        if (!Number.isInteger(percent) || percent < 0 || percent > 100)
          throw new CliError('--percent must be a whole number from 0 to 100');
        if (percent > 0 && options.cohort === undefined) throw new CliError('--percent needs --cohort');
        const actor = operatorName(options.as);
        const routing = await withRuntime({ migrate: false }, (runtime) =>
          setRouting(
            runtime.sql,
            {
              defaultProvider: options.default,
              cohortProvider: options.cohort ?? null,
              cohortPercent: percent,
            },
            actor,
            options.reason,
          ),
        );
        print(
          output(),
          routing,
          () =>
            `routing: default ${routing.defaultProvider}, ${routing.cohortPercent} % to ${routing.cohortProvider ?? '-'}`,
        );
      },
    );
  providers
    .command('rollback')
    .description('restore the routing in force before the current one')
    .requiredOption('--reason <text>', 'why, for the audit log')
    .option('--as <name>', 'who rolls back (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (options: { reason: string; as?: string }) => {
      const actor = operatorName(options.as);
      const routing = await withRuntime({ migrate: false }, (runtime) =>
        rollbackRouting(runtime.sql, actor, options.reason),
      );
      print(
        output(),
        routing,
        () =>
          `routing restored: default ${routing.defaultProvider}, ${routing.cohortPercent} % to ${routing.cohortProvider ?? '-'}`,
      );
    });
  providers
    .command('add <name>')
    .description(
      'register an external provider (its webhook secrets: `providers secret add`, or DEPOSIT_WEBHOOK_SECRET_<NAME>)',
    )
    .option('--as <name>', 'who adds it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (name: string, options: { as?: string }) => {
      const actor = operatorName(options.as);
      const row = await withRuntime({ migrate: false }, (runtime) => addProvider(runtime.sql, name, actor));
      print(output(), row, () => `${row.name}: ${row.mode}`);
    });
  providers
    .command('mode <name> <mode>')
    .description(
      `set a provider's mode: ${providerModes.join(', ')} (read_only still processes webhooks for existing references)`,
    )
    .requiredOption('--reason <text>', 'why, for the audit log')
    .option('--as <name>', 'who changes it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (name: string, mode: string, options: { reason: string; as?: string }) => {
      const chosen = providerModes.find((candidate) => candidate === mode);
      if (!chosen) throw new CliError(`mode must be one of ${providerModes.join(', ')}`);
      const actor = operatorName(options.as);
      const row = await withRuntime({ migrate: false }, (runtime) =>
        setProviderMode(runtime.sql, { name, mode: chosen, actor, reason: options.reason }),
      );
      print(output(), row, () => `${row.name}: ${row.mode}`);
    });
}

export function registerWebhookCommands(program: Command, output: () => Output): Command {
  const webhooks = program
    .command('webhooks')
    .description('provider deposit webhooks and their dead-letter queue');
  const dlq = webhooks
    .command('dlq')
    .description('provider webhooks that verified but could not be processed');
  dlq
    .command('list')
    .description('dead-lettered webhooks, oldest first, with the error that parked them')
    .option('--limit <n>', `at most this many (≤ ${deadLettersPageMax})`, '50')
    .action(async (options: { limit: string }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > deadLettersPageMax) {
        throw new CliError(`--limit must be a whole number from 1 to ${deadLettersPageMax}`);
      }
      const rows = await withRuntime({ migrate: false }, (runtime) => selectDeadLetters(runtime.sql, limit));
      const views = rows.map(({ body: _body, ...row }) => ({
        ...row,
        receivedAt: row.receivedAt.toISOString(),
      }));
      print(output(), views, () =>
        views.length === 0
          ? 'the dead-letter queue is empty'
          : views
              .map(
                (row) =>
                  `${row.id}  ${row.provider}  ${row.receivedAt}  tried ${row.attempts}×: ${row.error}`,
              )
              .join('\n'),
      );
    });
  dlq
    .command('replay <id>')
    .description(
      'process a dead-lettered webhook again (credits at most once; stays queued if it fails again)',
    )
    .option('--as <name>', 'who replays (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (id: string, options: { as?: string }) => {
      const actor = operatorName(options.as);
      const row = await withRuntime({ migrate: false }, (runtime) =>
        replayDeadLetter(runtime.sql, id, actor),
      );
      const { body: _body, ...view } = row;
      print(
        output(),
        { ...view, receivedAt: row.receivedAt.toISOString() },
        () => `${row.id}: ${row.outcome}`,
      );
    });
  return webhooks;
}
