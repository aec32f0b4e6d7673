import type { Command } from 'commander';
import { reencryptKeyring } from '../access/reencrypt.ts';
import { countSealsByKeyVersion } from '../deposits/provider-secrets-data.ts';
import { type Output, print, withRuntime } from './context.ts';

/** `settledesk keyring status|reencrypt`: the keyring encryption key's rotation. */
export function registerKeyringCommands(program: Command, output: () => Output): void {
  const keyring = program
    .command('keyring')
    .description('the key that seals secrets at rest (SETTLEDESK_KEYRING_KEY) and its rotation');
  keyring
    .command('status')
    .description('the current key version and how many secrets each key version sealed')
    .action(async () => {
      const status = await withRuntime({ migrate: false }, async (runtime) => ({
        currentKeyVersion: runtime.keyring.currentKeyVersion,
        seals: (await countSealsByKeyVersion(runtime.sql)).map((row) => ({
          ...row,
          count: Number(row.count),
        })),
      }));
      const stale = status.seals.filter((row) => row.keyVersion !== status.currentKeyVersion);
      print(
        output(),
        { ...status, sealedUnderOtherKeys: stale.reduce((sum, row) => sum + row.count, 0) },
        () =>
          [
            `current key version ${status.currentKeyVersion}`,
            ...status.seals.map(
              (row) => `${row.table.padEnd(26)} ${(row.keyVersion ?? 'unversioned').padEnd(20)} ${row.count}`,
            ),
            stale.length === 0
              ? 'everything is sealed under the current key'
              : 'not yet re-sealed: run `settledesk keyring reencrypt`',
          ].join('\n'),
      );
    });
  keyring
    .command('reencrypt')
    .description(
      're-seal now everything still under an older key (the keyring_reencrypt job does it every 5 minutes)',
    )
    .action(async () => {
      const result = await withRuntime({ migrate: false }, (runtime) =>
        reencryptKeyring(runtime.sql, runtime.keyring),
      );
      print(
        output(),
        result,
        () => `re-sealed ${result.signingKeys} signing keys and ${result.providerSecrets} provider secrets`,
      );
    });
}
