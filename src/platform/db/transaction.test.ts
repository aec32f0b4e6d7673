import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/db.ts';
import { transactionRetries, withTransaction } from './transaction.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await db.sql`create table cells (id int primary key, n int not null)`;
  await db.sql`insert into cells values (1, 0), (2, 0)`;
});

afterAll(async () => {
  await db.drop();
});

async function retries(sqlstate: string): Promise<number> {
  const metric = await transactionRetries.get();
  return metric.values.find((value) => value.labels.sqlstate === sqlstate)?.value ?? 0;
}

describe('withTransaction', () => {
  it('runs at read committed unless asked for another isolation level', async () => {
    const isolationOf = (options?: { isolation: 'repeatable read' | 'serializable' }) =>
      withTransaction(
        db.sql,
        async (tx) =>
          (await tx<{ level: string }[]>`select current_setting('transaction_isolation') as level`)[0]?.level,
        options,
      );
    expect(await isolationOf()).toBe('read committed');
    expect(await isolationOf({ isolation: 'repeatable read' })).toBe('repeatable read');
    expect(await isolationOf({ isolation: 'serializable' })).toBe('serializable');
  });

  it('runs both transactions of a real deadlock to completion: the victim is retried and counted', async () => {
    const before = await retries('40P01');
    let arrived = 0;
    let bothLocked!: () => void;
    const barrier = new Promise<void>((resolve) => {
      bothLocked = resolve;
    });
    const crosswise = (first: number, second: number) =>
      withTransaction(db.sql, async (tx) => {
        await tx`set local deadlock_timeout = '50ms'`;
        await tx`update cells set n = n + 1 where id = ${first}::int`;
        arrived += 1;
        if (arrived === 2) bothLocked();
        await barrier;
        await tx`update cells set n = n + 1 where id = ${second}::int`;
      });
    await Promise.all([crosswise(1, 2), crosswise(2, 1)]);
    expect(await retries('40P01')).toBe(before + 1);
    const rows = await db.sql<{ n: number }[]>`select n from cells order by id`;
    expect(rows.map((row) => row.n)).toEqual([2, 2]);
  });

  it('gives up after retriesMax and rethrows other errors at once', async () => {
    let attempts = 0;
    const serializationFailure = Object.assign(new Error('could not serialize'), { code: '40001' });
    await expect(
      withTransaction(
        db.sql,
        async () => {
          attempts += 1;
          throw serializationFailure;
        },
        { retriesMax: 2 },
      ),
    ).rejects.toBe(serializationFailure);
    expect(attempts).toBe(3);

    attempts = 0;
    await expect(
      withTransaction(db.sql, async (tx) => {
        attempts += 1;
        await tx`select 1 / 0`;
      }),
    ).rejects.toMatchObject({ code: '22012' });
    expect(attempts).toBe(1);
  });
});
