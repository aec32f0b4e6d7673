import { postJournal } from '../../src/ledger/service.ts';
import { transactionRetries } from '../../src/platform/db/transaction.ts';
import type { Sql } from '../../src/platform/db/types.ts';

/** Funds an account from the XLM `fees` system account, as a deposit would, in one posting. */
export async function fundFromFees(sql: Sql, accountId: string, amountMinor: bigint): Promise<void> {
  const [fees] = await sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = 'XLM'`;
  await sql.begin((tx) =>
    postJournal(tx, {
      kind: 'test_funding',
      entries: [
        { accountId: fees?.id ?? '', amountMinor: -amountMinor },
        { accountId, amountMinor },
      ],
    }),
  );
}

/**
 * Transactions retried after a deadlock in this test process so far. Every money transaction
 * locks in one global order (docs/ledger.md, "Lock order"), so anything but zero is a bug.
 */
export async function deadlockRetries(): Promise<number> {
  const metric = await transactionRetries.get();
  return metric.values.find((value) => value.labels.sqlstate === '40P01')?.value ?? 0;
}
