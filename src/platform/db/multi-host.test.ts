import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/db.ts';
import { startTcpRelay } from '../../../test/support/tcp-relay.ts';
import { DatabaseUnavailableError } from '../errors.ts';
import { createLogger } from '../logging.ts';
import { connect } from './connect.ts';
import { freePort } from './embedded.ts';
import { CannotConnectNowError, primaryClient, primaryHostUrl, writableHostTargets } from './multi-host.ts';

const logger = createLogger('silent');
let db: TestDatabase;
let deadPort: number;

beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
  // A port nothing listens on: connections to it are refused at once.
  deadPort = await freePort();
});

afterAll(async () => {
  await db.drop();
});

/** The test database's URL with `hosts` in front of its own host (or instead of it). */
function multiHost(hosts: readonly string[], options: { keepReal: boolean }): string {
  const match = /^(postgres(?:ql)?:\/\/(?:[^@/]*@)?)([^/?#]+)(\/[^?#]*)(\?[^#]*)?$/.exec(db.url);
  if (!match) throw new Error(`unexpected test database URL ${db.url}`);
  const all = options.keepReal ? [...hosts, match[2]!] : [...hosts];
  const query = new URLSearchParams(match[4] ?? '');
  query.set('target_session_attrs', 'read-write');
  return `${match[1]}${all.join(',')}${match[3]}?${query}`;
}

describe('writableHostTargets', () => {
  it('splits a read-write multi-host URL into single-host URLs that keep credentials, database and parameters', () => {
    const targets = writableHostTargets(
      'postgres://u:p%40ss@db-a:5433,[::1]:6432,db-c/ledger?sslmode=require&target_session_attrs=read-write',
    );
    expect(targets).toEqual([
      { host: 'db-a', port: 5433, url: 'postgres://u:p%40ss@db-a:5433/ledger?sslmode=require' },
      { host: '::1', port: 6432, url: 'postgres://u:p%40ss@[::1]:6432/ledger?sslmode=require' },
      { host: 'db-c', port: 5432, url: 'postgres://u:p%40ss@db-c/ledger?sslmode=require' },
    ]);
  });

  it('leaves single-host URLs and other target_session_attrs to postgres.js', () => {
    expect(
      writableHostTargets('postgres://u@db-a:5432/ledger?target_session_attrs=read-write'),
    ).toBeUndefined();
    expect(writableHostTargets('postgres://u@db-a,db-b/ledger')).toBeUndefined();
    expect(writableHostTargets('postgres://u@db-a,db-b/ledger?target_session_attrs=standby')).toBeUndefined();
  });
});

describe('a pool on a multi-host read-write URL', () => {
  it('skips a host that refuses connections and writes on the next one', async () => {
    const sql = connect({
      url: multiHost([`127.0.0.1:${deadPort}`], { keepReal: true }),
      poolMax: 2,
      logger,
    });
    try {
      const [row] = await sql<{ inRecovery: boolean; database: string }[]>`
        select pg_is_in_recovery() as "inRecovery", current_database() as database`;
      expect(row).toEqual({ inRecovery: false, database: db.name });
    } finally {
      await sql.end();
    }
  });

  it('fails each query at once while no host accepts writes, and keeps every pool slot usable', async () => {
    const sql = connect({
      url: multiHost([`127.0.0.1:${deadPort}`, `127.0.0.1:${deadPort}`], { keepReal: false }),
      poolMax: 3,
      logger,
    });
    try {
      // More failures than slots: a slot lost per failure would make the later queries hang.
      for (let attempt = 0; attempt < 12; attempt += 1) {
        const error = await sql`select 1`.catch((caught: unknown) => caught);
        // The class the API's error handler answers with a 503 (src/platform/http/problems.ts).
        expect(error).toBeInstanceOf(DatabaseUnavailableError);
        expect((error as Error).message).toMatch(/no host accepts writes/);
      }
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  // With a single-host URL postgres.js 3.4.9 crashes the process here (porsager/postgres#1208).
  it('survives the server ending a connection inside a transaction with pipelined queries, and serves the next query', async () => {
    const sql = connect({
      url: multiHost([`127.0.0.1:${deadPort}`], { keepReal: true }),
      poolMax: 2,
      logger,
    });
    try {
      let backend: number | undefined;
      const transaction = sql.begin(async (tx) => {
        const [row] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
        backend = row?.pid;
        await Promise.all([tx`select pg_sleep(5)`, tx`select 1`, tx`select 2`]);
      });
      const outcome = transaction.then(
        () => 'committed',
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      );
      while (backend === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      await db.sql`select pg_terminate_backend(${backend}::int)`;
      expect(await outcome).not.toBe('committed');
      const [row] = await sql<{ one: number }[]>`select 1::int as one`;
      expect(row?.one).toBe(1);
    } finally {
      // postgres.js's end() waits for a connection whose query the server ended (also with a
      // plain single-host pool), so it is bounded here as the runtime bounds it.
      await sql.end({ timeout: 1 });
    }
  });
});

describe('primaryClient', () => {
  // graphile-worker retries storing a job's result only on such codes; any other error there is
  // an unhandled rejection that ends the process.
  it('fails the queries of a connection that broke with 57P03, in promise and callback form, and keeps PostgreSQL answers', async () => {
    const target = new URL(db.url);
    const relay = await startTcpRelay({ host: target.hostname, port: Number(target.port || 5432) });
    const targets = writableHostTargets(
      multiHost([`127.0.0.1:${relay.port}`, `127.0.0.1:${deadPort}`], { keepReal: false }),
    );
    if (targets === undefined) throw new Error('the relay URL is not multi-host');
    const client = new (primaryClient(targets, () => {}))({ connectionString: targets[0]?.url });
    client.on('error', () => {});
    try {
      await client.connect();
      const answered = await client.query('select 1 / 0').catch((error: unknown) => error);
      expect(answered).toBeInstanceOf(pg.DatabaseError);
      expect(answered).toMatchObject({ code: '22012' });

      const running = client.query('select pg_sleep(5)').catch((error: unknown) => error);
      const queued = new Promise<Error | undefined>((resolve) => {
        client.query('select 1', (error) => resolve(error ?? undefined));
      });
      relay.cut();
      for (const error of [await running, await queued]) {
        expect(error).toBeInstanceOf(CannotConnectNowError);
        expect(error).toMatchObject({ code: '57P03' });
      }
      const after = await client.query('select 1').catch((error: unknown) => error);
      expect(after).toBeInstanceOf(CannotConnectNowError);
      expect(after).toMatchObject({ code: '57P03' });
    } finally {
      await client.end().catch(() => {});
      await relay.close();
    }
  });
});

describe('primaryHostUrl', () => {
  it('gives pg the single-host URL of the writable host', async () => {
    const url = await primaryHostUrl(multiHost([`127.0.0.1:${deadPort}`], { keepReal: true }));
    expect(url).not.toContain(',');
    expect(url).not.toContain('target_session_attrs');
    expect(url).toContain(`/${db.name}`);
  });

  it('names every host and why when none accepts writes', async () => {
    await expect(
      primaryHostUrl(multiHost([`127.0.0.1:${deadPort}`, `127.0.0.2:${deadPort}`], { keepReal: false })),
    ).rejects.toThrow(`127.0.0.1:${deadPort} did not answer`);
  });
});
