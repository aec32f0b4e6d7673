import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/db.ts';
import { createLogger } from '../logging.ts';
import { connect } from './connect.ts';
import { observeSql, poolInUse, poolWaiting, queryDuration } from './observe.ts';
import { withTransaction } from './transaction.ts';
import type { Sql } from './types.ts';

const poolMax = 3;
let db: TestDatabase;
let sql: Sql;
let unregister: () => void;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  await db.sql`create table observed_rows (id int primary key)`;
  const pool = observeSql(connect({ url: db.url, poolMax, logger: createLogger('silent') }), 'main', poolMax);
  sql = pool.sql;
  unregister = pool.unregister;
});

afterAll(async () => {
  unregister?.();
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

async function countOf(group: string): Promise<number> {
  const metric = await queryDuration.get();
  return (
    metric.values.find(
      (value) => value.metricName === 'db_query_duration_seconds_count' && value.labels.group === group,
    )?.value ?? 0
  );
}

async function gauge(metric: typeof poolInUse): Promise<number | undefined> {
  return (await metric.get()).values.find((value) => value.labels.pool === 'main')?.value;
}

describe('observeSql', () => {
  it('times every query once by its group: plain, in a transaction, unsafe, reserved, failed; a nested fragment is not a query', async () => {
    const before = {
      insert: await countOf('insert:observed_rows'),
      select: await countOf('select:observed_rows'),
      other: await countOf('select'),
      missing: await countOf('select:missing_table'),
    };
    const filter = sql`where id > ${0}`;
    await sql`insert into observed_rows values (${1})`;
    await sql`select id from observed_rows ${filter}`;
    await withTransaction(sql, async (tx) => {
      await tx`insert into observed_rows values (${2})`;
      await tx.unsafe('select id from observed_rows');
    });
    const reserved = await sql.reserve();
    await reserved`select 1`;
    reserved.release();
    await expect(sql`select * from missing_table`).rejects.toThrow(/missing_table/);
    expect(await countOf('insert:observed_rows')).toBe(before.insert + 2);
    expect(await countOf('select:observed_rows')).toBe(before.select + 2);
    expect(await countOf('select')).toBe(before.other + 1);
    expect(await countOf('select:missing_table')).toBe(before.missing + 1);
  });

  it('counts the connections held, up to the pool size, and the rest as waiting, back to zero afterwards', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = 0;
    const transactions = [1, 2].map(() =>
      withTransaction(sql, async (tx) => {
        await tx`select 1`;
        entered += 1;
        await held;
      }),
    );
    while (entered < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    const sleeps = [1, 2, 3].map(() => sql`select pg_sleep(0.5)`.execute());
    // Queries are dispatched in a microtask; a macrotask later all three are.
    await new Promise(setImmediate);
    expect(await gauge(poolInUse)).toBe(poolMax);
    expect(await gauge(poolWaiting)).toBe(2);
    release();
    await Promise.all([...transactions, ...sleeps]);
    expect(await gauge(poolInUse)).toBe(0);
    expect(await gauge(poolWaiting)).toBe(0);
  });

  it('stops reporting the pool once unregistered', async () => {
    const other = observeSql(connect({ url: db.url, poolMax: 2, logger: createLogger('silent') }), 'jobs', 2);
    try {
      await other.sql`select 1`;
      expect((await poolInUse.get()).values.map((value) => value.labels.pool).sort()).toEqual([
        'jobs',
        'main',
      ]);
      other.unregister();
      expect((await poolInUse.get()).values.map((value) => value.labels.pool)).toEqual(['main']);
    } finally {
      await other.sql.end({ timeout: 1 });
    }
  });
});
