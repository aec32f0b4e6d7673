import type { Command } from 'commander';
import { appendAudit } from '../audit/audit.ts';
import { ensureSystemAccounts, insertAsset, selectAssets } from '../ledger/data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';

const assetPattern = /^(XLM|[A-Za-z0-9]{1,12}:G[A-Z2-7]{55})$/;

export function registerAssetCommands(program: Command, output: () => Output): void {
  const assets = program
    .command('assets')
    .description('assets the ledger holds (XLM and CODE:ISSUER credit assets)');
  assets
    .command('list')
    .description('list enabled assets and their precision')
    .action(async () => {
      const rows = await withRuntime({ migrate: false }, (runtime) => selectAssets(runtime.sql));
      print(output(), rows, () => rows.map((row) => `${row.code}  precision ${row.precision}`).join('\n'));
    });
  assets
    .command('add <code>')
    .description('enable an asset and create its system accounts (safe to re-run)')
    .option('--precision <digits>', 'decimal places of the minor unit', '7')
    .option('--as <name>', 'who is acting (for the audit log)')
    .action(async (code: string, options: { precision: string; as?: string }) => {
      if (!assetPattern.test(code)) throw new CliError('asset must be XLM or CODE:ISSUER with a G… issuer');
      const precision = Number(options.precision);
      if (!Number.isInteger(precision) || precision < 0 || precision > 18)
        throw new CliError('--precision must be 0..18');
      const added = await withRuntime({ migrate: false }, (runtime) =>
        withTransaction(runtime.sql, async (tx) => {
          const inserted = await insertAsset(tx, code, precision);
          await ensureSystemAccounts(tx);
          if (inserted) {
            await appendAudit(tx, {
              actor: operatorName(options.as),
              action: 'assets.added',
              subjectType: 'asset',
              subjectId: code,
              after: { precision },
            });
          }
          return inserted;
        }),
      );
      print(output(), { code, added }, () => (added ? `${code} enabled` : `${code} was already enabled`));
    });
}
