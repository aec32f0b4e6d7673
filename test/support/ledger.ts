import { postJournal } from '../../src/ledger/service.ts';
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
