import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';

export type WatcherState = { cursor: bigint; seenLedger: number | null; seenLedgerClosedAt: Date | null };

export async function selectWatcher(db: Executor): Promise<WatcherState> {
  const [row] = await db<WatcherState[]>`
    select cursor, seen_ledger as "seenLedger", seen_ledger_closed_at as "seenLedgerClosedAt" from deposit_watcher`;
  assert(row, 'deposit_watcher has no row');
  return row;
}

/** Moves the cursor forward only: two watchers racing never move it back. */
export async function advanceCursor(db: Executor, pagingToken: bigint): Promise<void> {
  await db`
    update deposit_watcher set cursor = ${pagingToken}::int8, updated_at = now()
    where cursor < ${pagingToken}::int8`;
}

export async function recordSeenLedger(db: Executor, sequence: number, closedAt: Date): Promise<void> {
  await db`
    update deposit_watcher set seen_ledger = ${sequence}::int, seen_ledger_closed_at = ${closedAt}::timestamptz,
      updated_at = now()`;
}

export async function insertReject(
  db: Executor,
  pagingToken: bigint,
  reason: string,
  record: unknown,
): Promise<void> {
  await db`
    insert into deposit_watcher_rejects (paging_token, reason, record)
    values (${pagingToken}::int8, ${reason}::text, ${db.json(record as Parameters<typeof db.json>[0])}::jsonb)
    on conflict do nothing`;
}

export async function selectAccountByMemo(db: Executor, memoId: bigint): Promise<string | undefined> {
  const [row] = await db<{ accountId: string }[]>`
    select account_id as "accountId" from deposit_memos where memo_id = ${memoId}::int8`;
  return row?.accountId;
}

/** The account's deposit memo id, created on first use. */
export async function ensureMemo(db: Executor, accountId: string): Promise<bigint> {
  const [row] = await db<{ memoId: bigint }[]>`
    with created as (
      insert into deposit_memos (account_id) values (${accountId}::uuid) on conflict (account_id) do nothing
      returning memo_id
    )
    select memo_id as "memoId" from created
    union all
    select memo_id from deposit_memos where account_id = ${accountId}::uuid
    limit 1`;
  assert(row, 'no deposit memo after insert');
  return row.memoId;
}
