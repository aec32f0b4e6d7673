import type { Command } from 'commander';
import { selectImbalances } from '../ledger/data.ts';
import { proposeReversal } from '../ledger/reversals.ts';
import { getAccount } from '../ledger/service.ts';
import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { isUuid } from '../platform/ids.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { describeProposal } from './controls.ts';
import { approvalsFor } from './domains.ts';

/** Ledger commands for on-call: look at an account, re-check the zero-sum invariant, propose a reversal. */
export function registerLedgerCommands(program: Command, output: () => Output): void {
  const accounts = program.command('accounts').description('ledger accounts (read-only)');
  accounts
    .command('show <id>')
    .description('an account with its balance')
    .action(async (id: string) => {
      // An operator may paste an id in capitals; the API's canonical form is lowercase.
      const accountId = id.toLowerCase();
      if (!isUuid(accountId)) throw new CliError('the account id must be a UUID');
      const account = await withRuntime({ migrate: false }, (runtime) => getAccount(runtime.sql, accountId));
      const view = { ...account, balance: formatAmount(account.balanceMinor, account.precision) };
      print(
        output(),
        view,
        () =>
          `${account.id}  ${account.type}  ${account.asset}  ${account.status}  balance ${view.balance}` +
          (account.ownerRef === null ? '' : `  owner ${account.ownerRef}`),
      );
    });
  const ledger = program.command('ledger').description('the double-entry ledger');
  ledger
    .command('check')
    .description('re-check that every asset sums to zero; exits 1 naming each imbalanced asset')
    .action(async () => {
      const imbalances = await withRuntime({ migrate: false }, (runtime) => selectImbalances(runtime.sql));
      if (imbalances.length > 0) {
        print(output(), imbalances, () => '');
        throw new CliError(
          `ledger imbalanced: ${imbalances.map((row) => `${row.asset} sums to ${row.sumMinor} minor units`).join('; ')}`,
        );
      }
      print(output(), { balanced: true }, () => 'ledger balanced: every asset sums to zero');
    });
  ledger
    .command('reverse <journal>')
    .description('propose reversing a transfer or adjustment journal (a second admin approves it)')
    .requiredOption('--reason <text>', 'why (kept in the proposal and the audit log)')
    .option('--as <name>', 'who is proposing (for the audit log)')
    .action(async (journal: string, options: { reason: string; as?: string }) => {
      const journalId = journal.toLowerCase();
      if (!isUuid(journalId)) throw new CliError('the journal id must be a UUID');
      const proposal = await withRuntime({ migrate: false }, (runtime) =>
        withTransaction(runtime.sql, (tx) =>
          proposeReversal(tx, approvalsFor(runtime), {
            journalId,
            reason: options.reason,
            proposer: operatorName(options.as),
          }),
        ),
      );
      print(output(), proposal, () => describeProposal(proposal));
    });
}
