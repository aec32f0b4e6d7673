import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/db.ts';
import { findPostgresBinaries, replicaName, startPostgresPair } from '../../drills/postgres-pair.ts';
import { createLogger } from '../logging.ts';
import { connect } from './connect.ts';
import { freePort } from './embedded.ts';
import { databaseProber, readServerFigures, selfStandby } from './server-figures.ts';

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

/** Building the pair: initdb, a base backup, the replica streaming (about 10 s here). */
const pairStartMsMax = 120_000;
/** A lag read right after a commit on an idle pair is far below this; it is not a timing claim. */
const lagSecondsMax = 60;

describe('readServerFigures on a real primary and its streaming replica', () => {
  it(
    'reads the standby by application_name on the primary, and its own lag as standby="self" on the replica',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'settledesk-lag-'));
      // The servers run as the postgres user when the tests run as root.
      await chmod(dir, 0o755);
      const pair = await startPostgresPair({ dir, binaries: await findPostgresBinaries(), database: 'lag' });
      const logger = createLogger('silent');
      const primary = connect({ url: pair.primary.url('lag'), poolMax: 2, logger });
      const replica = connect({ url: pair.replica.url('lag'), poolMax: 2, logger });
      try {
        await primary`create table written (id int)`;
        await primary`insert into written values (1)`;
        const onPrimary = await readServerFigures(primary);
        expect(onPrimary.standbys).toBe(1);
        expect([...onPrimary.lagSeconds.keys()]).toEqual([replicaName]);
        expect(onPrimary.lagSeconds.get(replicaName)).toBeLessThan(lagSecondsMax);
        const onReplica = await readServerFigures(replica);
        expect(onReplica.standbys).toBe(0);
        expect([...onReplica.lagSeconds.keys()]).toEqual([selfStandby]);
        expect(onReplica.lagSeconds.get(selfStandby)).toBeLessThan(lagSecondsMax);
        expect(onReplica.sessionsMax).toBeGreaterThan(0);
      } finally {
        await Promise.all([primary.end({ timeout: 1 }), replica.end({ timeout: 1 })]);
        await pair.stop();
        await rm(dir, { recursive: true, force: true });
      }
    },
    pairStartMsMax,
  );
});
