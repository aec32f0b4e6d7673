import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { waitFor } from '../../test/support/process.ts';
import { startTcpRelay, type TcpRelay } from '../../test/support/tcp-relay.ts';
import { freePort } from './db/embedded.ts';
import { enqueueJob, startWorker, type Worker } from './jobs.ts';
import { createLogger } from './logging.ts';

const jobWaitMs = 20_000;

let db: TestDatabase;
let relay: TcpRelay;
let worker: Worker;
const ran: number[] = [];
const unhandled: unknown[] = [];
const recordUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  relay = await startTcpRelay({ host: target.hostname, port: Number(target.port || 5432) });
  // The relay first, then a host nothing listens on: a multi-host read-write URL, so the worker's
  // pool is built on primaryClient.
  const hosts = `127.0.0.1:${relay.port},127.0.0.1:${await freePort()}`;
  const url = new URL(db.url);
  const connectionString = `${url.protocol}//${url.username}${url.password ? `:${url.password}` : ''}@${hosts}${url.pathname}?target_session_attrs=read-write`;
  process.on('unhandledRejection', recordUnhandled);
  worker = await startWorker({
    connectionString,
    tasks: {
      // Breaks the connection that next writes: with concurrency 1 and no cron, the one storing
      // this job's completion.
      probe: async (payload) => {
        ran.push((payload as { n: number }).n);
        relay.cutOnNextWrite();
      },
    },
    concurrency: 1,
    pollIntervalMs: 200,
    logger: createLogger('silent'),
  });
});

afterAll(async () => {
  await worker?.stop();
  process.off('unhandledRejection', recordUnhandled);
  await relay?.close();
  await db?.drop();
});

async function jobsLeft(): Promise<number> {
  const [row] = await db.sql<{ count: number }[]>`select count(*)::int as count from graphile_worker.jobs`;
  return row?.count ?? -1;
}

describe('the job worker when its connection breaks while storing a job result', () => {
  it('stores the completion on a new connection, runs the job once, and keeps running jobs', async () => {
    await db.sql.begin((tx) => enqueueJob(tx, 'probe', { n: 1 }));
    await waitFor(
      async () => (ran.includes(1) && (await jobsLeft()) === 0 ? true : undefined),
      jobWaitMs,
      'the first job to run and its completion to be stored',
    );
    await db.sql.begin((tx) => enqueueJob(tx, 'probe', { n: 2 }));
    await waitFor(async () => (ran.includes(2) ? true : undefined), jobWaitMs, 'the second job to run');
    expect(ran.filter((n) => n === 1)).toHaveLength(1);
    expect(unhandled).toEqual([]);
  });
});
