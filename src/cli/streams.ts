import type { Command } from 'commander';
import { isUuid } from '../platform/ids.ts';
import { type RunOutcome, selectRun, selectRunsPage, selectStreamsPage } from '../streams/data.ts';
import { type RunView, runSettlementViews, runView } from '../streams/runs.ts';
import { databaseNow, getStreamDetail, type StreamView, streamView } from '../streams/service.ts';
import { runSettlement } from '../streams/settlement.ts';
import { runOutcomes, type StreamStatus, streamStatuses } from '../streams/states.ts';
import { accountOf, CliError, limitOf, listLimitMax, type Output, print, withRuntime } from './context.ts';

const runStates: readonly RunOutcome[] = [
  'running',
  ...(Object.keys(runOutcomes) as (keyof typeof runOutcomes)[]),
];

function runStateOf(text: string | undefined): RunOutcome | undefined {
  if (text === undefined) return undefined;
  const state = runStates.find((candidate) => candidate === text);
  if (!state) throw new CliError(`--state must be one of ${runStates.join(', ')}`);
  return state;
}

function runLine(run: RunView): string {
  const amounts = Object.entries(run.amountsMinor)
    .map(([asset, minor]) => `${minor} ${asset} minor`)
    .join(', ');
  return `${run.id}  ${run.outcome.padEnd(9)} as of ${run.asOf}  started ${run.startedAt}  finished ${run.finishedAt ?? '-'}  ${run.streamsSettled} streams settled${amounts ? ` (${amounts})` : ''}${run.error ? `  ${run.error}` : ''}`;
}

function statusOf(text: string | undefined): StreamStatus | undefined {
  if (text === undefined) return undefined;
  const status = streamStatuses.find((candidate) => candidate === text);
  if (!status) throw new CliError(`--status must be one of ${streamStatuses.join(', ')}`);
  return status;
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
  registerRunCommands(streams, output);
}

function registerRunCommands(streams: Command, output: () => Output): void {
  streams
    .command('runs')
    .description(
      'settlement runs, newest first: outcome, as of, started, finished, streams settled and amounts',
    )
    .option('--state <outcome>', `one of ${runStates.join(', ')}`)
    .option('--limit <n>', `at most this many (≤ ${listLimitMax})`, '20')
    .action(async (options: { state?: string; limit: string }) => {
      const outcome = runStateOf(options.state);
      const limit = limitOf(options.limit);
      const runs = await withRuntime({ migrate: false }, async (runtime) =>
        (await selectRunsPage(runtime.sql, { outcome, after: undefined, limit })).map(runView),
      );
      print(output(), runs, () => (runs.length === 0 ? 'no settlement runs' : runs.map(runLine).join('\n')));
    });
  streams
    .command('run <id>')
    .description("one settlement run with its settlements and each payout's state (settled: on chain)")
    .action(async (id: string) => {
      if (!isUuid(id)) throw new CliError('the run id must be a uuid');
      const shown = await withRuntime({ migrate: false }, async (runtime) => {
        const row = await selectRun(runtime.sql, id);
        if (!row) throw new CliError(`no settlement run ${id}`);
        return { ...runView(row), settlements: await runSettlementViews(runtime.sql, id) };
      });
      print(output(), shown, () =>
        [
          runLine(shown),
          ...shown.settlements.map(
            (row) =>
              `  stream ${row.streamId} period ${row.periodIndex} ${row.amount} ${row.asset} → ${row.recipient}${row.payoutId ? `  payout ${row.payoutId} ${row.payoutState}` : ''}`,
          ),
        ].join('\n'),
      );
    });
  streams
    .command('settle')
    .description(
      'one settlement run now, as the streams_settle job runs it: safe to repeat, each (stream, period) is paid once',
    )
    .option('--as-of <instant>', "settle as of this RFC 3339 instant, not later than the database's clock")
    .action(async (options: { asOf?: string }) => {
      const requested = options.asOf === undefined ? undefined : new Date(options.asOf);
      if (requested !== undefined && Number.isNaN(requested.getTime())) {
        throw new CliError('--as-of must be an RFC 3339 instant such as 2026-12-06T07:00:00Z');
      }
      const run = await withRuntime({ migrate: false }, async (runtime) => {
        const now = await databaseNow(runtime.sql);
        if (requested !== undefined && requested.getTime() > now.getTime()) {
          throw new CliError(`--as-of must not be later than the database's clock (${now.toISOString()})`);
        }
        return runSettlement(runtime.sql, { asOf: requested ?? now });
      });
      const shown = { ...runView(run), refused: run.refused };
      print(output(), shown, () =>
        [
          runLine(shown),
          ...run.refused.map((refusal) => `  refused ${refusal.streamId}: ${refusal.type} ${refusal.detail}`),
        ].join('\n'),
      );
    });
}
