import type { Command } from 'commander';
import { disputeStates, selectDisputesPage, selectHoldsPage } from '../escrow/data.ts';
import {
  disputeView,
  getHoldDetail,
  type HoldView,
  holdView,
  proposeResolution,
  type ResolutionOutcome,
} from '../escrow/service.ts';
import { type HoldState, holdStates } from '../escrow/states.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { isUuid } from '../platform/ids.ts';
import {
  accountOf,
  CliError,
  limitOf,
  listLimitMax,
  type Output,
  operatorName,
  print,
  withRuntime,
} from './context.ts';
import { describeProposal } from './controls.ts';
import { approvalsFor } from './domains.ts';

const resolutionOutcomes: readonly ResolutionOutcome[] = ['release', 'refund', 'split'];

function stateOf(text: string | undefined): HoldState | undefined {
  if (text === undefined) return undefined;
  const state = holdStates.find((candidate) => candidate === text);
  if (!state) throw new CliError(`--state must be one of ${holdStates.join(', ')}`);
  return state;
}

function line(hold: HoldView): string {
  return `${hold.id}  ${hold.state.padEnd(18)} ${hold.remaining.padStart(18)} of ${hold.amount} ${hold.asset}  ${hold.payerAccountId} → ${hold.payeeAccountId}  (${hold.stateReason})`;
}

export function registerEscrowCommands(program: Command, output: () => Output): void {
  const escrow = program.command('escrow').description('escrow holds and their disputes');
  const holds = escrow.command('holds').description('escrow holds');
  holds
    .command('list')
    .description('holds, newest first; a hold past its expiresAt shows as expired')
    .option('--state <state>', `one of ${holdStates.join(', ')}`)
    .option('--payer <account>', 'only holds paid by this account')
    .option('--payee <account>', 'only holds payable to this account')
    .option('--asset <code>', 'only holds of this asset')
    .option('--limit <n>', `at most this many (≤ ${listLimitMax})`, '50')
    .action(
      async (options: { state?: string; payer?: string; payee?: string; asset?: string; limit: string }) => {
        const filter = {
          state: stateOf(options.state),
          payerAccountId: accountOf('--payer', options.payer),
          payeeAccountId: accountOf('--payee', options.payee),
          asset: options.asset,
          after: undefined,
          limit: limitOf(options.limit),
        };
        const rows = await withRuntime({ migrate: false }, (runtime) => selectHoldsPage(runtime.sql, filter));
        const views = rows.map(holdView);
        print(output(), views, () => (views.length === 0 ? 'no escrow holds' : views.map(line).join('\n')));
      },
    );
  holds
    .command('show <id>')
    .description('one hold with its releases, refunds and dispute')
    .action(async (id: string) => {
      if (!isUuid(id)) throw new CliError('the hold id must be a uuid');
      const detail = await withRuntime({ migrate: false }, (runtime) => getHoldDetail(runtime.sql, id));
      print(output(), detail, () =>
        [
          line(detail),
          `  released ${detail.released}, refunded ${detail.refunded}; expires ${detail.expiresAt ?? 'never'} (then ${detail.expiryOutcome})`,
          ...detail.movements.map(
            (movement) =>
              `  ${movement.at}  ${movement.kind} ${movement.amount} (${movement.cause}) journal ${movement.journalId}`,
          ),
          ...(detail.dispute
            ? [
                `  dispute ${detail.dispute.id} ${detail.dispute.state} by ${detail.dispute.openedBy}: ${detail.dispute.reason}${detail.dispute.outcome ? ` → ${detail.dispute.outcome} (proposal ${detail.dispute.proposalId})` : ''}`,
              ]
            : []),
        ].join('\n'),
      );
    });
  escrow
    .command('disputes')
    .description('escrow disputes')
    .command('list')
    .description('disputes, newest first; --state open lists the ones waiting for two admins')
    .option('--state <state>', `one of ${disputeStates.join(', ')}`)
    .option('--limit <n>', `at most this many (≤ ${listLimitMax})`, '50')
    .action(async (options: { state?: string; limit: string }) => {
      const state = options.state === undefined ? undefined : disputeStates.find((s) => s === options.state);
      if (options.state !== undefined && !state) {
        throw new CliError(`--state must be one of ${disputeStates.join(', ')}`);
      }
      const filter = { state, after: undefined, limit: limitOf(options.limit) };
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        selectDisputesPage(runtime.sql, filter),
      );
      const views = rows.map(disputeView);
      print(output(), views, () =>
        views.length === 0
          ? 'no escrow disputes'
          : views
              .map(
                (dispute) =>
                  `${dispute.id}  ${dispute.state.padEnd(8)} hold ${dispute.holdId}  opened ${dispute.createdAt} by ${dispute.openedBy}: ${dispute.reason}${dispute.outcome ? ` → ${dispute.outcome} (proposal ${dispute.proposalId})` : ''}`,
              )
              .join('\n'),
      );
    });
  escrow
    .command('resolve <holdId>')
    .description('propose how a disputed hold ends (release, refund or split); a second admin approves it')
    .requiredOption('--outcome <outcome>', 'release (to the payee), refund (to the payer) or split')
    .option('--release <amount>', 'for a split: the part released to the payee')
    .option('--refund <amount>', 'for a split: the part refunded to the payer')
    .requiredOption('--reason <text>', 'why, with the evidence you checked')
    .option('--as <name>', 'who proposes (default SETTLEDESK_OPERATOR or the OS user)')
    .action(
      async (
        holdId: string,
        options: { outcome: string; release?: string; refund?: string; reason: string; as?: string },
      ) => {
        const outcome = resolutionOutcomes.find((candidate) => candidate === options.outcome);
        if (!outcome) throw new CliError(`--outcome must be one of ${resolutionOutcomes.join(', ')}`);
        if (!isUuid(holdId)) throw new CliError('the hold id must be a uuid');
        const proposer = operatorName(options.as);
        const proposal = await withRuntime({ migrate: false }, (runtime) =>
          withTransaction(runtime.sql, (tx) =>
            proposeResolution(tx, approvalsFor(runtime), {
              holdId,
              outcome,
              releaseAmount: options.release,
              refundAmount: options.refund,
              reason: options.reason,
              proposer,
              requestId: undefined,
            }),
          ),
        );
        print(output(), proposal, () => describeProposal(proposal));
      },
    );
}
