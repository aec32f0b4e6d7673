import type { Command } from 'commander';
import { selectAssets } from '../ledger/data.ts';
import { selectManualReview, selectPayoutsPage } from '../payouts/data.ts';
import {
  getPayoutDetail,
  type PayoutView,
  payoutView,
  proposeResolve,
  type ResolveDecision,
} from '../payouts/service.ts';
import { type PayoutState, payoutStates } from '../payouts/states.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { type AccountReport, ensureChannels, problemsOf, viewChannels } from '../stellar/channels.ts';
import { findStellar } from '../stellar/connect.ts';
import { loadWallet } from '../stellar/wallet.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { approvalsFor } from './domains.ts';

const listLimitMax = 200;

function limitOf(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > listLimitMax) {
    throw new CliError(`--limit must be a whole number from 1 to ${listLimitMax}`);
  }
  return limit;
}

function line(payout: PayoutView): string {
  return `${payout.id}  ${payout.state.padEnd(13)} ${payout.amount.padStart(18)} ${payout.asset}  → ${payout.destination}  (${payout.stateReason})`;
}

function stateOf(text: string | undefined): PayoutState | undefined {
  if (text === undefined) return undefined;
  const state = payoutStates.find((candidate) => candidate === text);
  if (!state) throw new CliError(`--state must be one of ${payoutStates.join(', ')}`);
  return state;
}

export function registerPayoutCommands(program: Command, output: () => Output): void {
  const payouts = program
    .command('payouts')
    .description('payouts to Stellar addresses and the manual review queue');
  payouts
    .command('show <id>')
    .description('one payout with its state history and settlement attempts (hashes, windows)')
    .action(async (id: string) => {
      const detail = await withRuntime({ migrate: false }, (runtime) => getPayoutDetail(runtime.sql, id));
      print(output(), detail, () =>
        [
          line(detail),
          ...detail.history.map(
            (entry) =>
              `  ${entry.at}  ${entry.fromState ?? '-'} → ${entry.toState}  by ${entry.actor}: ${entry.reason}`,
          ),
          ...detail.attempts.map(
            (attempt) =>
              `  attempt ${attempt.id} ${attempt.state}: hash ${attempt.hash} channel ${attempt.channel} seq ${attempt.sequence} until ${attempt.maxTime} / ledger ${attempt.maxLedger}, sent ${attempt.submissions}×${attempt.outcome ? `, ${attempt.outcome}` : ''}`,
          ),
        ].join('\n'),
      );
    });
  payouts
    .command('list')
    .description('payouts, newest first')
    .option('--state <state>', `one of ${payoutStates.join(', ')}`)
    .option('--limit <n>', `at most this many (≤ ${listLimitMax})`, '50')
    .action(async (options: { state?: string; limit: string }) => {
      const state = stateOf(options.state);
      const limit = limitOf(options.limit);
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        selectPayoutsPage(runtime.sql, { state, sourceAccountId: undefined, after: undefined, limit }),
      );
      const views = rows.map(payoutView);
      print(output(), views, () => (views.length === 0 ? 'no payouts' : views.map(line).join('\n')));
    });
  payouts
    .command('manual-review')
    .description('payouts whose outcome could not be determined automatically, oldest first')
    .option('--limit <n>', `at most this many (≤ ${listLimitMax})`, '50')
    .option('--offset <n>', 'skip this many', '0')
    .action(async (options: { limit: string; offset: string }) => {
      const offset = Number(options.offset);
      if (!Number.isInteger(offset) || offset < 0) throw new CliError('--offset must be a whole number');
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        selectManualReview(runtime.sql, limitOf(options.limit), offset),
      );
      const views = rows.map(payoutView);
      print(output(), views, () =>
        views.length === 0 ? 'the manual review queue is empty' : views.map(line).join('\n'),
      );
    });
  payouts
    .command('resolve <id>')
    .description(
      'propose confirm_sent or refund_failed for a payout in manual review; a second admin approves it',
    )
    .requiredOption('--decision <decision>', 'confirm_sent (it left on chain) or refund_failed (it did not)')
    .requiredOption('--reason <text>', 'why, with the evidence you checked')
    .option('--as <name>', 'who proposes (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (id: string, options: { decision: string; reason: string; as?: string }) => {
      if (options.decision !== 'confirm_sent' && options.decision !== 'refund_failed') {
        throw new CliError('--decision must be confirm_sent or refund_failed');
      }
      const decision: ResolveDecision = options.decision;
      const proposer = operatorName(options.as);
      const proposal = await withRuntime({ migrate: false }, (runtime) =>
        withTransaction(runtime.sql, (tx) =>
          proposeResolve(tx, approvalsFor(runtime), {
            payoutId: id,
            decision,
            reason: options.reason,
            proposer,
            requestId: undefined,
          }),
        ),
      );
      print(
        output(),
        proposal,
        () =>
          `proposal ${proposal.id} (${proposal.action}) is pending: a second admin approves it with\n  settledesk approvals approve ${proposal.id} --hash ${proposal.payloadHash} --as NAME`,
      );
    });
}

function describeReports(reports: readonly AccountReport[]): string {
  return reports
    .map(
      (report) =>
        `${report.role.padEnd(10)} ${report.accountId}  ${report.exists ? `${report.nativeBalance} XLM, sequence ${report.sequence}` : 'MISSING'}${report.missingTrustlines.length > 0 ? `  no trustline: ${report.missingTrustlines.join(', ')}` : ''}`,
    )
    .join('\n');
}

async function channelWork(work: 'ensure' | 'view') {
  return withRuntime({ migrate: false }, async (runtime) => {
    const endpoints = await findStellar(runtime.config);
    const wallet = await loadWallet(runtime.config);
    const assets = (await selectAssets(runtime.sql)).map((asset) => asset.code);
    return work === 'ensure'
      ? ensureChannels(endpoints, wallet, assets)
      : viewChannels(endpoints, wallet, assets);
  });
}

export function registerChannelCommands(program: Command, output: () => Output): void {
  const channels = program.command('channels').description('the hot wallet and channel accounts on chain');
  channels
    .command('view')
    .description('each account: exists, balance, sequence, missing trustlines')
    .action(async () => {
      const reports = await channelWork('view');
      print(output(), reports, () => describeReports(reports));
    });
  channels
    .command('verify')
    .description('exit 1 unless every account exists with every trustline')
    .action(async () => {
      const reports = await channelWork('view');
      const problems = problemsOf(reports);
      print(output(), { ok: problems.length === 0, problems, accounts: reports }, () =>
        problems.length === 0 ? 'all accounts ready' : problems.join('\n'),
      );
      if (problems.length > 0) process.exitCode = 1;
    });
  channels
    .command('ensure')
    .description(
      'create what is missing (friendbot on sandbox/testnet, else from the hot wallet); safe to re-run',
    )
    .action(async () => {
      const reports = await channelWork('ensure');
      print(output(), reports, () => describeReports(reports));
    });
}
