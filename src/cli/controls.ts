import type { Command } from 'commander';
import type { ProposalView } from '../approvals/engine.ts';
import type { Controls } from '../controls/data.ts';
import {
  enterReadOnly,
  freezePayouts,
  proposeRelease,
  readControls,
  restoreStandardAction,
  unfreezePayoutsAction,
} from '../controls/service.ts';
import { type Output, operatorName, print, withRuntime } from './context.ts';
import { approvalsFor } from './domains.ts';

type ReasonOption = { as?: string; reason: string };

function describeControls(controls: Controls): string {
  return [
    `payments mode:  ${controls.paymentsMode}`,
    `payouts frozen: ${controls.payoutsFrozen ? 'yes' : 'no'}`,
    `last change:    ${controls.updatedAt.toISOString()} by ${controls.updatedBy} (${controls.reason})`,
  ].join('\n');
}

export function describeProposal(proposal: ProposalView): string {
  return `proposal ${proposal.id} (${proposal.action}) is pending: a second admin approves it with\n  settledesk approvals approve ${proposal.id} --hash ${proposal.payloadHash} --as NAME`;
}

export function registerControlCommands(program: Command, output: () => Output): void {
  const mode = program.command('mode').description('kill switches: payments mode and payout freeze');
  mode
    .command('show')
    .description('show the payments mode and whether payouts are frozen')
    .action(async () => {
      const controls = await withRuntime({ migrate: false }, (runtime) => readControls(runtime.sql));
      print(output(), controls, () => describeControls(controls));
    });
  const brakes = [
    {
      name: 'read-only',
      description: 'refuse every new money movement (one operator may do this)',
      pull: enterReadOnly,
    },
    {
      name: 'freeze',
      description: 'stop submitting payouts; accepted payouts wait (one operator may do this)',
      pull: freezePayouts,
    },
  ] as const;
  for (const brake of brakes) {
    mode
      .command(brake.name)
      .description(brake.description)
      .requiredOption('--reason <text>', 'why (kept in the audit log)')
      .option('--as <name>', 'who is acting (for the audit log)')
      .action(async (options: ReasonOption) => {
        const controls = await withRuntime({ migrate: false }, (runtime) =>
          brake.pull(runtime.sql, { name: operatorName(options.as) }, options.reason),
        );
        print(output(), controls, () => describeControls(controls));
      });
  }
  const releases = [
    {
      name: 'standard',
      description: 'propose returning to standard mode (needs a second admin)',
      action: restoreStandardAction,
    },
    {
      name: 'unfreeze',
      description: 'propose unfreezing payouts (needs a second admin)',
      action: unfreezePayoutsAction,
    },
  ] as const;
  for (const release of releases) {
    mode
      .command(release.name)
      .description(release.description)
      .requiredOption('--reason <text>', 'why (kept in the audit log)')
      .option('--as <name>', 'who is proposing (for the audit log)')
      .action(async (options: ReasonOption) => {
        const proposal = await withRuntime({ migrate: false }, (runtime) =>
          proposeRelease(
            runtime.sql,
            approvalsFor(runtime),
            release.action,
            { name: operatorName(options.as) },
            options.reason,
          ),
        );
        print(output(), proposal, () => describeProposal(proposal));
      });
  }
}
