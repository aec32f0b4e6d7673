import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { waitFor } from '../../test/support/process.ts';
import { startTcpRelay, type TcpRelay } from '../../test/support/tcp-relay.ts';
import { freePort } from './db/embedded.ts';
import { enqueueJob, startWorker, type Worker } from './jobs.ts';
import { createLogger } from './logging.ts';

const jobWaitMs = 20_000;

let db: TestDatabase;
const unhandled: unknown[] = [];
const recordUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  db = await createTestDatabase();
  process.on('unhandledRejection', recordUnhandled);
});

afterAll(async () => {
  process.off('unhandledRejection', recordUnhandled);
  await db?.drop();
});

/** The test database's URL on other hosts, with `target_session_attrs=read-write` for several. */
function urlOn(hosts: readonly string[]): string {
  const url = new URL(db.url);
  const credentials = `${url.username}${url.password ? `:${url.password}` : ''}@`;
  const query = hosts.length > 1 ? '?target_session_attrs=read-write' : '';
  return `${url.protocol}//${credentials}${hosts.join(',')}${url.pathname}${query}`;
}

async function jobsLeft(): Promise<number> {
  const [row] = await db.sql<{ count: number }[]>`select count(*)::int as count from graphile_worker.jobs`;
  return row?.count ?? -1;
}

describe.each([
  // The relay first, then a host nothing listens on: the pool is built on primaryClient.
  {
    kind: 'a multi-host read-write URL',
    hosts: async (relay: string) => [relay, `127.0.0.1:${await freePort()}`],
  },
  { kind: 'a single-host URL', hosts: async (relay: string) => [relay] },
])('the job worker on $kind when its connection breaks while storing a job result', ({ hosts }) => {
  let relay: TcpRelay;
  let worker: Worker;
  const ran: number[] = [];

  beforeAll(async () => {
    const target = new URL(db.url);
    relay = await startTcpRelay({ host: target.hostname, port: Number(target.port || 5432) });
    worker = await startWorker({
      connectionString: urlOn(await hosts(`127.0.0.1:${relay.port}`)),
      tasks: {
        // The first job breaks the connection that next writes: with concurrency 1 and no cron,
        // the one storing its completion.
        probe: async (payload) => {
          const { n } = payload as { n: number };
          ran.push(n);
          if (n === 1) relay.cutOnNextWrite();
        },
      },
      concurrency: 1,
      pollIntervalMs: 200,
      logger: createLogger('silent'),
    });
  });

  afterAll(async () => {
    await worker?.stop();
    await relay?.close();
  });

  it('stores the completion on a new connection, runs the job once, and keeps running jobs', async () => {
    await db.sql.begin((tx) => enqueueJob(tx, 'probe', { n: 1 }));
    await waitFor(
      async () => (ran.includes(1) && (await jobsLeft()) === 0 ? true : undefined),
      jobWaitMs,
      'the first job to run and its completion to be stored',
    );
    await db.sql.begin((tx) => enqueueJob(tx, 'probe', { n: 2 }));
    await waitFor(
      async () => (ran.includes(2) && (await jobsLeft()) === 0 ? true : undefined),
      jobWaitMs,
      'the second job to run and its completion to be stored',
    );
    expect(ran.filter((n) => n === 1)).toHaveLength(1);
    expect(unhandled).toEqual([]);
  });
});
