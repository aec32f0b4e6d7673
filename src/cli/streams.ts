import type { Command } from 'commander';
import { isUuid } from '../platform/ids.ts';
import { selectStreamsPage } from '../streams/data.ts';
import { databaseNow, getStreamDetail, type StreamView, streamView } from '../streams/service.ts';
import { runSettlement } from '../streams/settlement.ts';
import { type StreamStatus, streamStatuses } from '../streams/states.ts';
import { accountOf, CliError, limitOf, listLimitMax, type Output, print, withRuntime } from './context.ts';

function statusOf(text: string | undefined): StreamStatus | undefined {
  if (text === undefined) return undefined;
  const status = streamStatuses.find((candidate) => candidate === text);
  if (!status) throw new CliError(`--status must be one of ${streamStatuses.join(', ')}`);
  return status;
}

/** `--as-of`: an RFC 3339 instant, or the database's clock when absent. */
function asOfOption(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const at = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(at.getTime())) {
    throw new CliError('--as-of must be an RFC 3339 instant, e.g. 2026-01-31T12:00:00Z');
  }
  return at;
}

function line(stream: StreamView): string {
  const recipient = stream.recipientAccountId ?? stream.recipientAddress;
  return `${stream.id}  ${stream.status.padEnd(9)} settled ${stream.settled} + withdrawable ${stream.withdrawable} + refunded ${stream.refunded} of ${stream.total} ${stream.asset}  ${stream.payerAccountId} → ${recipient}  next ${stream.nextSettlementAt ?? '-'}`;
}

export function registerStreamCommands(program: Command, output: () => Output): void {
  const streams = program.command('streams').description('payment streams and their settlements');
  streams
    .command('list')
    .description('streams, newest first, with what accrued, was settled and refunded now')
    .option('--status <status>', `one of ${streamStatuses.join(', ')}`)
    .option('--payer <account>', 'only streams paid by this account')
    .option('--recipient <account>', 'only streams paying this account')
    .option('--asset <code>', 'only streams of this asset')
    .option('--limit <n>', `at most this many (≤ ${listLimitMax})`, '50')
    .action(
      async (options: {
        status?: string;
        payer?: string;
        recipient?: string;
        asset?: string;
        limit: string;
      }) => {
        const status = statusOf(options.status);
        const payerAccountId = accountOf('--payer', options.payer);
        const recipientAccountId = accountOf('--recipient', options.recipient);
        const limit = limitOf(options.limit);
        const views = await withRuntime({ migrate: false }, async (runtime) => {
          const at = await databaseNow(runtime.sql);
          const rows = await selectStreamsPage(runtime.sql, {
            payerAccountId,
            recipientAccountId,
            asset: options.asset,
            status,
            at,
            after: undefined,
            limit,
          });
          return rows.map((row) => streamView(row, at));
        });
        print(output(), views, () => (views.length === 0 ? 'no streams' : views.map(line).join('\n')));
      },
    );
  streams
    .command('show <id>')
    .description('one stream with its schedule and its settlements (each with its run, journal and payout)')
    .action(async (id: string) => {
      if (!isUuid(id)) throw new CliError('the stream id must be a uuid');
      const detail = await withRuntime({ migrate: false }, async (runtime) =>
        getStreamDetail(runtime.sql, id, await databaseNow(runtime.sql)),
      );
      print(output(), detail, () =>
        [
          line(detail),
          `  accrued ${detail.accrued} as of ${detail.asOf}; ${detail.startAt} → ${detail.endAt}${detail.cliffAt ? ` (cliff ${detail.cliffAt})` : ''}, every ${detail.settlement.intervalSeconds} s, minimum ${detail.settlement.minimumAmount}; hold ${detail.holdId}`,
          ...detail.settlements.map(
            (settlement) =>
              `  ${settlement.at}  ${settlement.cause} ${settlement.amount}${settlement.periodIndex === null ? '' : ` period ${settlement.periodIndex} run ${settlement.runId}`} journal ${settlement.journalId}${settlement.payoutId ? ` payout ${settlement.payoutId}` : ''}`,
          ),
        ].join('\n'),
      );
    });
  streams
    .command('settle')
    .description(
      'one settlement run now, as the streams_settle job runs it (a re-run pays only what accrued since the last committed settlement)',
    )
    .option(
      '--as-of <instant>',
      "settle as of this RFC 3339 instant, not after the database's clock (default: the clock)",
    )
    .action(async (options: { asOf?: string }) => {
      const asOf = asOfOption(options.asOf);
      const run = await withRuntime({ migrate: false }, async (runtime) => {
        const now = await databaseNow(runtime.sql);
        // A run as of a later instant would pay what has not accrued yet, irreversibly for a Stellar recipient.
        if (asOf && asOf > now) {
          throw new CliError(
            `--as-of ${asOf.toISOString()} is after the database's clock (${now.toISOString()}): a run pays only what has accrued`,
          );
        }
        return runSettlement(runtime.sql, { asOf: asOf ?? now });
      });
      print(output(), run, () =>
        [
          `run ${run.id} ${run.outcome}: ${run.streamsSettled} streams settled as of ${run.asOf.toISOString()}`,
          ...run.refused.map(
            (refusal) => `  ${refusal.streamId} not settled: ${refusal.type} (${refusal.detail})`,
          ),
        ].join('\n'),
      );
    });
}
