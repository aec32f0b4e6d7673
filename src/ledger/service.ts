import { randomUUID } from 'node:crypto';
import { assert } from '../platform/assert.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import {
  type AccountRow,
  type AccountType,
  insertAccount,
  insertJournalWithEntries,
  selectAccount,
  selectAccountsForUpdate,
  selectAssetPrecision,
  updateBalances,
} from './data.ts';

export type Posting = {
  kind: string;
  entries: readonly { accountId: string; amountMinor: bigint }[];
  reference?: string;
  reversesId?: string;
  requestId?: string;
  /** Chosen by the caller when it must name the journal in writes pipelined alongside it. */
  journalId?: string;
};

export const entriesPerJournalMax = 200;

function isCustomerFacing(type: AccountType): boolean {
  return type === 'customer' || type === 'merchant';
}

/** Refuses a posting the ledger must not accept; `accounts` are locked rows of this transaction. */
function checkPosting(
  posting: Posting,
  ids: readonly string[],
  accounts: readonly AccountRow[],
): Map<string, AccountRow> {
  const byId = new Map(accounts.map((account) => [account.id, account]));
  for (const id of ids) {
    const account = byId.get(id);
    if (!account) throw new DomainError('ledger/account-not-found', `no account ${id}`, { accountId: id });
    if (account.status !== 'active') {
      throw new DomainError('ledger/account-closed', `account ${id} is closed`, { accountId: id });
    }
  }
  const sums = new Map<string, bigint>();
  const deltas = new Map<string, bigint>();
  for (const entry of posting.entries) {
    assert(entry.amountMinor !== 0n, 'a journal entry cannot be zero');
    const asset = byId.get(entry.accountId)?.asset ?? '';
    sums.set(asset, (sums.get(asset) ?? 0n) + entry.amountMinor);
    deltas.set(entry.accountId, (deltas.get(entry.accountId) ?? 0n) + entry.amountMinor);
  }
  for (const [asset, sum] of sums) {
    if (sum !== 0n) throw new DomainError('ledger/unbalanced', `the entries do not sum to zero in ${asset}`);
  }
  for (const [accountId, delta] of deltas) {
    const account = byId.get(accountId);
    if (account && isCustomerFacing(account.type) && account.balanceMinor + delta < 0n) {
      throw new DomainError('ledger/insufficient-funds', `account ${accountId} has insufficient funds`, {
        accountId,
      });
    }
  }
  return byId;
}

/**
 * Posts one balanced journal transaction inside the caller's transaction (every money move in
 * every domain goes through here). Accounts are locked in id order, so two postings can never
 * deadlock on each other; balances are updated in the same transaction as the entries. A caller
 * that already locked the accounts in this transaction (selectAccountsForUpdate) passes them in,
 * saving a round trip on the hottest path.
 */
export async function postJournal(
  tx: Tx,
  posting: Posting,
  alreadyLocked: readonly AccountRow[] = [],
): Promise<{ journalId: string; createdAt: Date; accounts: AccountRow[] }> {
  assert(
    posting.entries.length >= 2 && posting.entries.length <= entriesPerJournalMax,
    'a journal needs 2..200 entries',
  );
  const ids = [...new Set(posting.entries.map((entry) => entry.accountId))].sort();
  const covered = ids.every((id) => alreadyLocked.some((account) => account.id === id));
  const accounts = covered ? [...alreadyLocked] : await selectAccountsForUpdate(tx, ids);
  const byId = checkPosting(posting, ids, accounts);
  const journalId = posting.journalId ?? randomUUID();
  const entries = posting.entries.map((entry) => ({
    ...entry,
    asset: byId.get(entry.accountId)?.asset ?? '',
  }));
  // postgres.js pipelines statements issued together on the transaction's connection: the entries
  // and the balance update travel in one round trip. Both are checked together at commit.
  const [{ createdAt }] = await Promise.all([
    insertJournalWithEntries(
      tx,
      {
        id: journalId,
        kind: posting.kind,
        reference: posting.reference ?? null,
        reversesId: posting.reversesId ?? null,
        requestId: posting.requestId ?? null,
      },
      entries,
    ),
    updateBalances(tx, entries),
  ]);
  return { journalId, createdAt, accounts };
}

export async function createAccount(
  db: Executor,
  input: { type: 'customer' | 'merchant'; asset: string; ownerRef: string | null },
): Promise<AccountRow> {
  if ((await selectAssetPrecision(db, input.asset)) === undefined) {
    throw new DomainError('ledger/unknown-asset', `asset ${input.asset} is not enabled`);
  }
  return insertAccount(db, input);
}

export async function getAccount(db: Executor, id: string): Promise<AccountRow> {
  const account = await selectAccount(db, id);
  if (!account) throw new DomainError('ledger/account-not-found', `no account ${id}`, { accountId: id });
  return account;
}
