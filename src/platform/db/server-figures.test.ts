import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/db.ts';
import { createLogger } from '../logging.ts';
import { connect } from './connect.ts';
import { freePort } from './embedded.ts';
import { databaseProber } from './server-figures.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
});

afterAll(async () => {
  await db?.drop();
});

describe('databaseProber', () => {
  it('succeeds when select 1 answers', async () => {
    expect(await databaseProber(db.sql)()).toBe('success');
  });

  it('fails when nothing listens where the pool connects', async () => {
    const port = await freePort();
    const sql = connect({
      url: `postgres://postgres@127.0.0.1:${port}/none`,
      poolMax: 1,
      logger: createLogger('silent'),
    });
    try {
      expect(await databaseProber(sql)()).toBe('failed');
    } finally {
      await sql.end({ timeout: 0 });
    }
  });

  it('fails a probe that outlasts its timeout, and the next one while it is still running, without adding a query', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const calls: string[] = [];
    const stuck = Object.assign((strings: TemplateStringsArray) => {
      calls.push(strings.join(''));
      return held;
    }, {}) as unknown as Parameters<typeof databaseProber>[0];
    const probe = databaseProber(stuck, 1);
    expect(await probe()).toBe('failed');
    expect(await probe()).toBe('failed');
    expect(calls).toEqual(['select 1']);
    release();
    await held;
    await new Promise(setImmediate);
    expect(await probe()).toBe('success');
    expect(calls).toEqual(['select 1', 'select 1']);
  });
});
