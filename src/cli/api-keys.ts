import type { Command } from 'commander';
import { apiKeyView, createApiKey, listApiKeys, revokeApiKey } from '../access/api-keys.ts';
import type { ApiKeyScope } from '../platform/auth/api-keys-data.ts';
import { limitOf, listLimitMax, type Output, operatorName, print, withRuntime } from './context.ts';

type CreateOptions = { scope: string; expiresInDays?: string; as?: string };

export function registerApiKeyCommands(program: Command, output: () => Output): void {
  const keys = program
    .command('api-keys')
    .description('API keys for integrations (sdk_live_…): scoped, expiring, revocable on every instance');
  keys
    .command('create <name>')
    .description('create a key; it is printed this once and only its SHA-256 is stored')
    .requiredOption('--scope <scope>', 'the role its caller gets: service or viewer')
    .option('--expires-in-days <n>', 'days until it stops working (1-365, default 90)')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (name: string, options: CreateOptions) => {
      const days = options.expiresInDays === undefined ? undefined : Number(options.expiresInDays);
      const created = await withRuntime({ migrate: false }, (runtime) =>
        createApiKey(
          runtime.sql,
          { name, scope: options.scope as ApiKeyScope, expiresInDays: days },
          { name: operatorName(options.as) },
        ),
      );
      print(
        output(),
        created,
        () =>
          `${created.key}\n(id ${created.id}, scope ${created.scope}, expires ${created.expiresAt}: store it now, it is not shown again)`,
      );
    });
  keys
    .command('list')
    .description('keys newest first, with scope, expiry, last use and revocation (never the secret)')
    .option('--limit <n>', `at most this many (≤ ${listLimitMax})`, '50')
    .action(async (options: { limit: string }) => {
      const limit = limitOf(options.limit);
      const rows = (
        await withRuntime({ migrate: false }, (runtime) =>
          listApiKeys(runtime.sql, { after: undefined, limit }),
        )
      ).map(apiKeyView);
      print(output(), rows, () =>
        rows
          .map(
            (row) =>
              `${row.id}  ${row.name}  ${row.scope.padEnd(7)}  expires ${row.expiresAt}  last used ${row.lastUsedAt ?? 'never'}${row.revokedAt ? `  revoked ${row.revokedAt} by ${row.revokedBy}` : ''}`,
          )
          .join('\n'),
      );
    });
  keys
    .command('revoke <id>')
    .description('refuse the key on every instance within seconds')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (id: string, options: { reason: string; as?: string }) => {
      const revoked = await withRuntime({ migrate: false }, (runtime) =>
        revokeApiKey(runtime.sql, id, { name: operatorName(options.as) }, options.reason),
      );
      print(output(), revoked, () => `${revoked.id} (${revoked.name}) is revoked`);
    });
}
