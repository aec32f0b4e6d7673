import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { assert } from '../platform/assert.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql, Tx } from '../platform/db/types.ts';
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

/** The accounts each open transaction has locked, and the highest id among them. */
const lockedAccounts = new WeakMap<Tx, { ids: Set<string>; highestId: string }>();

/**
 * The one way to lock ledger accounts, and where the global lock order is enforced. Every money
 * transaction takes its locks in this order (docs/ledger.md, "Lock order"):
 * 1. the rows naming its work, each claimed by one transaction at a time (proposal, settlement
 *    attempt and channel, payouts, escrow holds);
 * 2. every ledger account it posts to, in id order, here: all of them in one call before its
 *    first posting. A later call may add accounts only above the highest id it holds already,
 *    which keeps the order across statements; anything else is a programmer error (assert);
 * 3. then writes that wait on no account: inserts (journal, entries, audit, payouts, deposits,
 *    webhook events, deliveries, jobs) and its idempotency key's row. Their foreign keys take
 *    `for key share` on accounts, which the `for no key update` taken here does not block, so an
 *    insert never waits on another transaction's posting (a settlement's event about a merchant
 *    whose refund is posting did, with `for update`: src/payouts/lock-order.test.ts).
 * Two transactions that each follow it cannot wait on each other in a cycle: the 40P01 retries
 * counted by `withTransaction` stay at zero.
 */
export async function lockAccounts(tx: Tx, ids: readonly string[]): Promise<AccountRow[]> {
  // PostgreSQL orders uuids as their lowercase text sorts.
  const wanted = [...new Set(ids.map((id) => id.toLowerCase()))].sort();
  const held = lockedAccounts.get(tx) ?? { ids: new Set<string>(), highestId: '' };
  const added = wanted.filter((id) => !held.ids.has(id));
  const lowest = added[0];
  assert(
    lowest === undefined || lowest > held.highestId,
    `account ${lowest} would be locked after account ${held.highestId}: lock every account of the transaction in one lockAccounts call`,
  );
  const rows = await selectAccountsForUpdate(tx, wanted);
  for (const id of added) held.ids.add(id);
  held.highestId = added.at(-1) ?? held.highestId;
  lockedAccounts.set(tx, held);
  return rows;
}

/**
 * Posts one balanced journal transaction inside the caller's transaction (every money move in
 * every domain goes through here). Its accounts are locked by `lockAccounts`, in the global
 * order; balances are updated in the same transaction as the entries. A caller that already
 * locked the accounts with `lockAccounts` and has not posted to them since passes the rows in,
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
  assert(
    !covered || ids.every((id) => lockedAccounts.get(tx)?.ids.has(id.toLowerCase())),
    'rows passed as already locked were not locked by lockAccounts in this transaction',
  );
  const accounts = covered ? [...alreadyLocked] : await lockAccounts(tx, ids);
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

/** Opens a customer or merchant account; the account and its audit row commit together. */
export async function createAccount(
  sql: Sql,
  input: { type: 'customer' | 'merchant'; asset: string; ownerRef: string | null },
  actor: { name: string; requestId?: string },
): Promise<AccountRow> {
  return withTransaction(sql, async (tx) => {
    if ((await selectAssetPrecision(tx, input.asset)) === undefined) {
      throw new DomainError('ledger/unknown-asset', `asset ${input.asset} is not enabled`);
    }
    const account = await insertAccount(tx, input);
    await appendAudit(tx, {
      actor: actor.name,
      action: 'account.created',
      subjectType: 'account',
      subjectId: account.id,
      after: { type: account.type, asset: account.asset, ownerRef: input.ownerRef },
      requestId: actor.requestId,
    });
    return account;
  });
}

export async function getAccount(db: Executor, id: string): Promise<AccountRow> {
  const account = await selectAccount(db, id);
  if (!account) throw new DomainError('ledger/account-not-found', `no account ${id}`, { accountId: id });
  return account;
}
