import type { Command } from 'commander';
import type { ProposalState } from '../approvals/data.ts';
import { proposalStates } from '../approvals/data.ts';
import type { ProposalView } from '../approvals/engine.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { approvalsFor } from './domains.ts';

const listLimitDefault = 50;

function describe(view: ProposalView): string {
  const lines = [
    `${view.id}  ${view.action}  ${view.state}`,
    `  proposer: ${view.proposer}   reason: ${view.reason}`,
    `  created ${view.createdAt.toISOString()}   expires ${view.expiresAt.toISOString()}`,
    `  payload hash: ${view.payloadHash}`,
    `  payload: ${JSON.stringify(view.payload)}`,
  ];
  for (const review of view.reviews)
    lines.push(`  ${review.decision} by ${review.reviewer} at ${review.createdAt.toISOString()}`);
  if (view.result) lines.push(`  result: ${JSON.stringify(view.result)}`);
  return lines.join('\n');
}

function parseState(state: string | undefined): ProposalState | undefined {
  if (state === undefined) return undefined;
  const match = proposalStates.find((candidate) => candidate === state);
  if (!match) throw new CliError(`--state must be one of ${proposalStates.join(', ')}`);
  return match;
}

export function registerApprovalCommands(program: Command, output: () => Output): void {
  const approvals = program
    .command('approvals')
    .description('two-person rule: review proposals for manual money moves');
  approvals
    .command('list')
    .description('list proposals, oldest first')
    .option('--state <state>', `one of ${proposalStates.join(', ')}`, 'pending')
    .option('--limit <n>', 'at most this many', String(listLimitDefault))
    .action(async (options: { state?: string; limit: string }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new CliError('--limit must be a positive whole number');
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        approvalsFor(runtime).list(runtime.sql, { state: parseState(options.state), limit }),
      );
      print(output(), rows, () =>
        rows.length === 0
          ? 'no proposals'
          : rows
              .map(
                (row) =>
                  `${row.id}  ${row.action.padEnd(28)} ${row.state.padEnd(8)} by ${row.proposer}: ${row.reason}`,
              )
              .join('\n'),
      );
    });
  approvals
    .command('show <id>')
    .description('show one proposal with its payload, hash and reviews')
    .action(async (id: string) => {
      const view = await withRuntime({ migrate: false }, (runtime) =>
        approvalsFor(runtime).show(runtime.sql, id),
      );
      print(output(), view, () => describe(view));
    });
  approvals
    .command('approve <id>')
    .description(
      'approve (and, with enough approvals, execute) a proposal; name the payload hash you reviewed',
    )
    .requiredOption('--hash <sha256>', 'the payload hash shown by `approvals show`')
    .option('--reason <text>', 'optional note')
    .option('--as <name>', 'who is approving; must differ from the proposer')
    .action(async (id: string, options: { hash: string; reason?: string; as?: string }) => {
      const view = await withRuntime({ migrate: false }, (runtime) =>
        approvalsFor(runtime).approve(runtime.sql, {
          id,
          reviewer: operatorName(options.as),
          payloadHash: options.hash,
          reason: options.reason,
        }),
      );
      print(output(), view, () => describe(view));
    });
  approvals
    .command('reject <id>')
    .description('reject a proposal; a rejection is final')
    .requiredOption('--reason <text>', 'why')
    .option('--as <name>', 'who is rejecting')
    .action(async (id: string, options: { reason: string; as?: string }) => {
      const view = await withRuntime({ migrate: false }, (runtime) =>
        approvalsFor(runtime).reject(runtime.sql, {
          id,
          reviewer: operatorName(options.as),
          reason: options.reason,
        }),
      );
      print(output(), view, () => describe(view));
    });
}
