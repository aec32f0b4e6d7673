import type { Command } from 'commander';
import { listSuspense, suspensePageMax } from '../deposits/suspense.ts';
import { decodeCursor } from '../platform/http/cursor.ts';
import { CliError, type Output, print, withRuntime } from './context.ts';
import { table } from './table.ts';

/** `settledesk deposits suspense list`: money held for a person to attribute (read-only). */
export function registerDepositCommands(program: Command, output: () => Output): void {
  const deposits = program.command('deposits').description('deposits credited or held for review');
  const suspense = deposits
    .command('suspense')
    .description('deposits held in deposit_suspense: credited to nobody until a person attributes them');
  suspense
    .command('list')
    .description('held deposits, newest first, with why each was held')
    .option('--limit <n>', `at most this many (≤ ${suspensePageMax})`, '50')
    .option('--cursor <cursor>', 'the nextCursor of the previous page')
    .action(async (options: { limit: string; cursor?: string }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > suspensePageMax) {
        throw new CliError(`--limit must be a whole number from 1 to ${suspensePageMax}`);
      }
      const before = options.cursor === undefined ? undefined : decodeCursor(options.cursor, '--cursor');
      const page = await withRuntime({ migrate: false }, (runtime) =>
        listSuspense(runtime.sql, { limit, before }),
      );
      print(output(), page, () =>
        page.items.length === 0
          ? 'nothing is held in suspense'
          : [
              table(
                ['deposit', 'held at', 'provider', 'reason', 'amount', 'asset', 'reference'],
                page.items.map((item) => [
                  item.depositId,
                  item.heldAt,
                  item.provider,
                  item.reason,
                  item.amount,
                  item.asset,
                  item.reference,
                ]),
              ),
              ...(page.nextCursor ? [`more: --cursor ${page.nextCursor}`] : []),
            ].join('\n'),
      );
    });
}
