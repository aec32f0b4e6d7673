import type { Command } from 'commander';
import { assert } from '../platform/assert.ts';
import { isRole, roles } from '../platform/auth/roles.ts';
import { issueToken } from '../platform/auth/tokens.ts';
import { parseDurationSeconds } from '../platform/duration.ts';
import { CliError, type Output, print, withRuntime } from './context.ts';

export function registerAdminCommands(program: Command, output: () => Output): void {
  program
    .command('migrate')
    .description('apply pending database migrations (safe to run concurrently and repeatedly)')
    .action(async () => {
      const applied = await withRuntime({ migrate: true }, async (runtime) => {
        assert(runtime.migration !== undefined, 'runtime opened to migrate reports no migration');
        return runtime.migration;
      });
      print(output(), applied, () =>
        applied.applied.length === 0
          ? `schema is up to date (version ${applied.version})`
          : `applied ${applied.applied.join(', ')} (now at version ${applied.version})`,
      );
    });

  const token = program.command('token').description('API tokens');
  token
    .command('issue')
    .description('print a token signed with the current signing key')
    .requiredOption('--sub <name>', 'who the token is for')
    .requiredOption('--role <role>', `one of ${roles.join(', ')}`)
    .option('--ttl <duration>', 'lifetime, e.g. 15m, 1h, 1d (default TOKEN_TTL_SECONDS)')
    .action(async (options: { sub: string; role: string; ttl?: string }) => {
      if (!isRole(options.role)) throw new CliError(`--role must be one of ${roles.join(', ')}`);
      const role = options.role;
      if (!/^[A-Za-z0-9._@:-]{1,128}$/.test(options.sub))
        throw new CliError('--sub must be 1-128 characters of [A-Za-z0-9._@:-]');
      const result = await withRuntime({ migrate: true }, async (runtime) => {
        const ttlSeconds =
          options.ttl === undefined
            ? runtime.config.tokenTtlSecondsDefault
            : parseDurationSeconds(options.ttl);
        if (ttlSeconds === undefined || ttlSeconds < 1 || ttlSeconds > runtime.config.tokenTtlSecondsMax) {
          throw new CliError(`--ttl must be a duration from 1s to ${runtime.config.tokenTtlSecondsMax}s`);
        }
        const value = await issueToken(runtime.keyring, { subject: options.sub, role, ttlSeconds });
        return { token: value, kid: runtime.keyring.signingKey().kid, expiresInSeconds: ttlSeconds };
      });
      print(output(), result, () => result.token);
    });
}
