import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { assertMoneyMovementAllowed } from '../controls/service.ts';
import { formatAmount, parseAmount } from '../money/money.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { DomainError, type ProblemType } from '../platform/errors.ts';
import { selectJournalEntries } from './data.ts';
import { getAccount, lockAccounts, postJournal } from './service.ts';

export type TransferInput = {
  sourceAccountId: string;
  destinationAccountId: string;
  amount: string;
  reference?: string;
};

export type Transfer = {
  id: string;
  sourceAccountId: string;
  destinationAccountId: string;
  asset: string;
  amount: string;
  reference: string | null;
  createdAt: string;
};

const refusalTypes: Readonly<Record<string, ProblemType>> = {
  format: 'money/invalid-format',
  too_many_decimals: 'money/too-many-decimals',
  sign_not_allowed: 'money/sign-not-allowed',
  not_positive: 'money/not-positive',
  too_large: 'money/too-large',
};

export function parsePositiveAmount(text: string, precision: number): bigint {
  const parsed = parseAmount(text, { precision });
  if (!parsed.ok)
    throw new DomainError(refusalTypes[parsed.refusal] ?? 'money/invalid-format', parsed.detail);
  return parsed.minor;
}

/** Moves funds between two accounts of one asset, atomically, in the caller's transaction. */
export async function transfer(
  tx: Tx,
  input: TransferInput,
  actor: { name: string; requestId: string },
): Promise<Transfer> {
  if (input.sourceAccountId === input.destinationAccountId) {
    throw new DomainError('ledger/same-account', 'source and destination must be different accounts');
  }
  // Lock both now, in the global order (lockAccounts): the checks below read exactly what will be
  // posted, and postJournal reuses these rows instead of locking again.
  // The kill-switch read and the lock travel in one pipelined round trip.
  const [, locked] = await Promise.all([
    assertMoneyMovementAllowed(tx),
    lockAccounts(tx, [input.sourceAccountId, input.destinationAccountId]),
  ]);
  const source = locked.find((account) => account.id === input.sourceAccountId);
  const destination = locked.find((account) => account.id === input.destinationAccountId);
  if (!source) throw new DomainError('ledger/account-not-found', `no account ${input.sourceAccountId}`);
  if (!destination)
    throw new DomainError('ledger/account-not-found', `no account ${input.destinationAccountId}`);
  if (source.asset !== destination.asset) {
    throw new DomainError(
      'ledger/asset-mismatch',
      `source holds ${source.asset} and destination holds ${destination.asset}`,
    );
  }
  const amountMinor = parsePositiveAmount(input.amount, source.precision);
  const id = randomUUID();
  const amount = formatAmount(amountMinor, source.precision);
  // The posting and its audit row are pipelined: one round trip on the hottest path.
  const [posted] = await Promise.all([
    postJournal(
      tx,
      {
        journalId: id,
        kind: 'transfer',
        entries: [
          { accountId: source.id, amountMinor: -amountMinor },
          { accountId: destination.id, amountMinor },
        ],
        reference: input.reference,
        requestId: actor.requestId,
      },
      locked,
    ),
    appendAudit(tx, {
      actor: actor.name,
      action: 'transfer.posted',
      subjectType: 'journal_transaction',
      subjectId: id,
      after: { source: source.id, destination: destination.id, asset: source.asset, amount },
      requestId: actor.requestId,
    }),
  ]);
  return {
    id,
    sourceAccountId: source.id,
    destinationAccountId: destination.id,
    asset: source.asset,
    amount,
    reference: input.reference ?? null,
    createdAt: posted.createdAt.toISOString(),
  };
}

export async function getTransfer(db: Executor, id: string): Promise<Transfer> {
  const entries = await selectJournalEntries(db, id);
  const debit = entries.find((entry) => entry.amountMinor < 0n);
  const credit = entries.find((entry) => entry.amountMinor > 0n);
  if (!debit || !credit || debit.kind !== 'transfer')
    throw new DomainError('ledger/transfer-not-found', `no transfer ${id}`);
  const source = await getAccount(db, debit.accountId);
  return {
    id,
    sourceAccountId: debit.accountId,
    destinationAccountId: credit.accountId,
    asset: debit.asset,
    amount: formatAmount(credit.amountMinor, source.precision),
    reference: debit.reference,
    createdAt: debit.createdAt.toISOString(),
  };
}
