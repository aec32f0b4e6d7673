import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';

export const customerAccountTypes = ['customer', 'merchant'] as const;
export const systemAccountTypes = [
  'escrow',
  'payout_clearing',
  'deposit_suspense',
  'settlement',
  'fees',
  'deposit_clearing',
] as const;
export type AccountType = (typeof customerAccountTypes)[number] | (typeof systemAccountTypes)[number];

export type AccountRow = {
  id: string;
  type: AccountType;
  asset: string;
  precision: number;
  ownerRef: string | null;
  status: 'active' | 'closed';
  balanceMinor: bigint;
  createdAt: Date;
};

export type EntryRow = { id: bigint; journalId: string; kind: string; amountMinor: bigint; createdAt: Date };

const accountColumns = (db: Executor) => db`
  a.id, a.type, a.asset, s.precision, a.owner_ref as "ownerRef", a.status, a.balance_minor as "balanceMinor",
  a.created_at as "createdAt"`;

export async function insertAccount(
  db: Executor,
  account: { type: AccountType; asset: string; ownerRef: string | null },
): Promise<AccountRow> {
  const [row] = await db<AccountRow[]>`
    with inserted as (
      insert into accounts (type, asset, owner_ref) values (${account.type}::text, ${account.asset}::text, ${account.ownerRef}::text)
      returning *
    )
    select ${accountColumns(db)} from inserted a join assets s on s.code = a.asset`;
  assert(row, 'insert into accounts returned no row');
  return row;
}

export async function selectAccount(db: Executor, id: string): Promise<AccountRow | undefined> {
  const [row] = await db<AccountRow[]>`
    select ${accountColumns(db)} from accounts a join assets s on s.code = a.asset where a.id = ${id}::uuid`;
  return row;
}

/**
 * Locks accounts in id order (rows are locked as the sort returns them). `for no key update`, the
 * lock an update of the balance takes anyway, not `for update`: postings still queue for each
 * other's accounts, but the `for key share` of a foreign key check (entries, payouts, deposits,
 * webhook events…) does not wait for them. Only `lockAccounts` (service.ts) calls this: it keeps
 * the order across statements.
 */
export async function selectAccountsForUpdate(db: Executor, ids: readonly string[]): Promise<AccountRow[]> {
  return db<AccountRow[]>`
    select ${accountColumns(db)} from accounts a join assets s on s.code = a.asset
    where a.id = any(${ids as string[]}::uuid[])
    order by a.id
    for no key update of a`;
}

export async function selectSystemAccount(
  db: Executor,
  type: AccountType,
  asset: string,
): Promise<AccountRow | undefined> {
  const [row] = await db<AccountRow[]>`
    select ${accountColumns(db)} from accounts a join assets s on s.code = a.asset
    where a.type = ${type}::text and a.asset = ${asset}::text`;
  return row;
}

export async function selectAssetPrecision(db: Executor, code: string): Promise<number | undefined> {
  const [row] = await db<{ precision: number }[]>`select precision from assets where code = ${code}::text`;
  return row?.precision;
}

/** The journal row and its entries in one statement (one round trip on every money move). */
export async function insertJournalWithEntries(
  db: Executor,
  journal: {
    id: string;
    kind: string;
    reference: string | null;
    reversesId: string | null;
    requestId: string | null;
  },
  entries: readonly { accountId: string; asset: string; amountMinor: bigint }[],
): Promise<{ createdAt: Date }> {
  // The entries' created_at and the journal's are both now(): the transaction's start time.
  const [row] = await db<{ createdAt: Date }[]>`
    with journal as (
      insert into journal_transactions (id, kind, reference, reverses_id, request_id)
      values (${journal.id}::uuid, ${journal.kind}::text, ${journal.reference}::text, ${journal.reversesId}::uuid,
              ${journal.requestId}::text)
      returning id
    )
    insert into entries (journal_id, account_id, asset, amount_minor)
    select journal.id, e.account_id, e.asset, e.amount_minor
    from journal, unnest(
      ${entries.map((entry) => entry.accountId)}::uuid[],
      ${entries.map((entry) => entry.asset)}::text[],
      ${entries.map((entry) => entry.amountMinor.toString())}::bigint[]
    ) as e(account_id, asset, amount_minor)
    returning created_at as "createdAt"`;
  assert(row, 'insert into entries returned no row');
  return row;
}

/** Applies the entries to the balances; the check constraint refuses a negative customer balance. */
export async function updateBalances(
  db: Executor,
  entries: readonly { accountId: string; amountMinor: bigint }[],
): Promise<void> {
  await db`
    update accounts a set balance_minor = a.balance_minor + d.delta
    from (
      select account_id, sum(amount_minor)::bigint as delta
      from unnest(${entries.map((entry) => entry.accountId)}::uuid[], ${entries.map((entry) => entry.amountMinor.toString())}::bigint[])
        as e(account_id, amount_minor)
      group by account_id
    ) d
    where a.id = d.account_id`;
}

export async function selectEntriesPage(
  db: Executor,
  accountId: string,
  afterId: bigint | undefined,
  limit: number,
): Promise<EntryRow[]> {
  return db<EntryRow[]>`
    select e.id, e.journal_id as "journalId", j.kind, e.amount_minor as "amountMinor", e.created_at as "createdAt"
    from entries e join journal_transactions j on j.id = e.journal_id
    where e.account_id = ${accountId}::uuid and e.id > ${(afterId ?? 0n).toString()}::bigint
    order by e.id
    limit ${limit}::int`;
}

/** Per asset, the sum of every entry; anything but zero is an imbalance. */
export async function selectImbalances(db: Executor): Promise<{ asset: string; sumMinor: bigint }[]> {
  return db<{ asset: string; sumMinor: bigint }[]>`
    select asset, sum(amount_minor)::bigint as "sumMinor" from entries group by asset having sum(amount_minor) <> 0`;
}

export async function selectJournalEntries(
  db: Executor,
  journalId: string,
): Promise<
  {
    accountId: string;
    asset: string;
    amountMinor: bigint;
    kind: string;
    createdAt: Date;
    reference: string | null;
  }[]
> {
  return db`
    select e.account_id as "accountId", e.asset, e.amount_minor as "amountMinor", j.kind, j.created_at as "createdAt",
           j.reference
    from entries e join journal_transactions j on j.id = e.journal_id
    where e.journal_id = ${journalId}::uuid
    order by e.id`;
}

/**
 * Locks a journal row for its reversal: the reversals of one journal queue here. `for no key
 * update` does not block the foreign-key checks of inserts naming the journal.
 */
export async function selectJournalForUpdate(
  db: Executor,
  journalId: string,
): Promise<{ id: string; kind: string } | undefined> {
  const [row] = await db<{ id: string; kind: string }[]>`
    select id, kind from journal_transactions where id = ${journalId}::uuid for no key update`;
  return row;
}

/** The journal reversing this one, if any. Read in its own statement, after the row lock: under
 * read committed it sees a reversal committed while this transaction waited for the lock. */
export async function selectReversalOf(db: Executor, journalId: string): Promise<string | undefined> {
  const [row] = await db<{ id: string }[]>`
    select id from journal_transactions where reverses_id = ${journalId}::uuid`;
  return row?.id;
}

export async function insertAsset(db: Executor, code: string, precision: number): Promise<boolean> {
  const rows = await db`
    insert into assets (code, precision) values (${code}::text, ${precision}::int) on conflict (code) do nothing returning code`;
  return rows.length === 1;
}

/** Creates any missing system account of every asset; safe to run at every start. */
export async function ensureSystemAccounts(db: Executor): Promise<void> {
  await db`select ledger_ensure_system_accounts(code) from assets`;
}

export async function selectAssets(db: Executor): Promise<{ code: string; precision: number }[]> {
  return db<{ code: string; precision: number }[]>`select code, precision from assets order by code`;
}
