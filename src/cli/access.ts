import type { Command } from 'commander';
import { addKey, listKeys, promoteKey, reinstateUser, retireKey, suspendUser } from '../access/service.ts';
import { type Output, operatorName, print, withRuntime } from './context.ts';
import { registerKeyringCommands } from './keyring.ts';

type AsOption = { as?: string };
type ReasonOption = AsOption & { reason: string };

export function registerAccessCommands(program: Command, output: () => Output): void {
  registerKeyringCommands(program, output);
  const keys = program
    .command('keys')
    .description('JWT signing keys: rotate without restarting any instance');
  keys
    .command('list')
    .description('list every key with its state (current, verify_only, retired)')
    .action(async () => {
      const rows = await withRuntime({ migrate: false }, (runtime) => listKeys(runtime.sql));
      print(output(), rows, () =>
        rows
          .map((row) => `${row.kid}  ${row.state.padEnd(11)}  created ${row.createdAt.toISOString()}`)
          .join('\n'),
      );
    });
  keys
    .command('add')
    .description('add a new key as verify_only; promote it once every instance has loaded it')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (options: AsOption) => {
      const kid = await withRuntime({ migrate: false }, (runtime) =>
        addKey(runtime.sql, runtime.keyring, { name: operatorName(options.as) }),
      );
      print(output(), { kid, state: 'verify_only' }, () => kid);
    });
  keys
    .command('promote <kid>')
    .description('make the key current (new tokens are signed with it); the old current becomes verify_only')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (kid: string, options: AsOption) => {
      await withRuntime({ migrate: false }, (runtime) =>
        promoteKey(runtime.sql, kid, { name: operatorName(options.as) }),
      );
      print(output(), { kid, state: 'current' }, () => `${kid} is now current`);
    });
  keys
    .command('retire <kid>')
    .description('refuse every token signed with this key, on every instance, within seconds')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (kid: string, options: AsOption) => {
      await withRuntime({ migrate: false }, (runtime) =>
        retireKey(runtime.sql, kid, { name: operatorName(options.as) }),
      );
      print(output(), { kid, state: 'retired' }, () => `${kid} is retired`);
    });

  const users = program.command('users').description('suspend or reinstate a user (token subject)');
  users
    .command('suspend <name>')
    .description("refuse the user's tokens on every instance at once, before they expire")
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (name: string, options: ReasonOption) => {
      await withRuntime({ migrate: false }, (runtime) =>
        suspendUser(runtime.sql, name, { name: operatorName(options.as) }, options.reason),
      );
      print(output(), { name, suspended: true }, () => `${name} is suspended`);
    });
  users
    .command('reinstate <name>')
    .description("accept the user's tokens again")
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (name: string, options: ReasonOption) => {
      await withRuntime({ migrate: false }, (runtime) =>
        reinstateUser(runtime.sql, name, { name: operatorName(options.as) }, options.reason),
      );
      print(output(), { name, suspended: false }, () => `${name} is reinstated`);
    });
}
