import type { Command } from 'commander';
import {
  addProviderSecret,
  listProviderSecrets,
  promoteProviderSecret,
  retireProviderSecret,
} from '../deposits/provider-secrets.ts';
import { type Output, operatorName, print, withRuntime } from './context.ts';

type AsOption = { as?: string };

/** `settledesk providers secret add|promote|retire|list`: provider webhook secrets, rotated live. */
export function registerProviderSecretCommands(providers: Command, output: () => Output): void {
  const secret = providers
    .command('secret')
    .description('provider webhook secrets: rotate without restarting any instance');
  secret
    .command('list <provider>')
    .description("the provider's secrets with their states (never the secrets themselves)")
    .action(async (provider: string) => {
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        listProviderSecrets(runtime.sql, provider),
      );
      const views = rows.map((row) => ({
        ...row,
        createdAt: row.createdAt.toISOString(),
        promotedAt: row.promotedAt?.toISOString() ?? null,
        retiredAt: row.retiredAt?.toISOString() ?? null,
      }));
      print(output(), views, () =>
        views.length === 0
          ? `${provider} has no secret in the database: it verifies with DEPOSIT_WEBHOOK_SECRET_${provider.toUpperCase()}`
          : views
              .map(
                (row) => `${row.id}  ${row.state.padEnd(11)}  created ${row.createdAt} by ${row.createdBy}`,
              )
              .join('\n'),
      );
    });
  secret
    .command('add <provider>')
    .description(
      'generate a secret, accepted on every instance within seconds; printed once, give it to the provider (the first add imports the configured DEPOSIT_WEBHOOK_SECRET_<NAME>)',
    )
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (provider: string, options: AsOption) => {
      const added = await withRuntime({ migrate: false }, (runtime) =>
        addProviderSecret(runtime.sql, runtime.keyring, {
          provider,
          configured: runtime.config.deposits.webhookSecrets[provider] ?? [],
          actor: { name: operatorName(options.as) },
        }),
      );
      print(output(), added, () =>
        [
          ...added.imported.map(
            (id) => `${id}  imported from DEPOSIT_WEBHOOK_SECRET_${provider.toUpperCase()}`,
          ),
          `${added.id}  ${added.state}`,
          `secret (shown once): ${added.secret}`,
        ].join('\n'),
      );
    });
  secret
    .command('promote <id>')
    .description('make the secret current (the one the provider signs with); the old current stays accepted')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (id: string, options: AsOption) => {
      const row = await withRuntime({ migrate: false }, (runtime) =>
        promoteProviderSecret(runtime.sql, id, { name: operatorName(options.as) }),
      );
      print(output(), { id: row.id, provider: row.provider, state: row.state }, () => `${id} is now current`);
    });
  secret
    .command('retire <id>')
    .description('refuse webhooks signed with this secret, on every instance, within seconds')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (id: string, options: AsOption) => {
      const row = await withRuntime({ migrate: false }, (runtime) =>
        retireProviderSecret(runtime.sql, id, { name: operatorName(options.as) }),
      );
      print(output(), { id: row.id, provider: row.provider, state: row.state }, () => `${id} is retired`);
    });
}
