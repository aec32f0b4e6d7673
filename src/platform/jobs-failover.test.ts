import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/process.ts';
import { findPostgresBinaries, type PostgresPair, startPostgresPair } from '../drills/postgres-pair.ts';
import { withSql } from '../drills/support.ts';
import { enqueueJob, jobConnectionsLost, startWorker, type Worker } from './jobs.ts';
import { createLogger } from './logging.ts';

const database = 'jobs';
const pollIntervalMs = 1_000;
const jobWaitMs = 30_000;

let dir: string;
let pair: PostgresPair;
let worker: Worker;
const ran: { n: number; host: string }[] = [];

/** A job that records where the database was when it ran. */
async function enqueueProbe(url: string, n: number): Promise<void> {
  await withSql(url, (sql) => sql.begin((tx) => enqueueJob(tx, 'probe', { n })));
}

async function ranProbe(n: number): Promise<{ n: number; host: string } | undefined> {
  return ran.find((entry) => entry.n === n);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'settledesk-jobs-failover-'));
  // PostgreSQL may run as another user (as root, the drills start it as "postgres").
  await chmod(dir, 0o755);
  pair = await startPostgresPair({ dir: join(dir, 'pg'), binaries: await findPostgresBinaries(), database });
  worker = await startWorker({
    connectionString: pair.multiHostUrl(database),
    tasks: {
      probe: async (payload, helpers) => {
        const { rows } = await helpers.query<{ port: number }>('select inet_server_port() as port');
        ran.push({ n: (payload as { n: number }).n, host: String(rows[0]?.port) });
      },
    },
    concurrency: 2,
    pollIntervalMs,
    logger: createLogger('silent'),
  });
});

afterAll(async () => {
  await worker?.stop();
  await pair?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the job worker on a multi-host read-write URL', () => {
  it('runs a job enqueued after the primary is killed and the replica promoted, in the same runner', async () => {
    await enqueueProbe(pair.primary.url(database), 1);
    expect((await waitFor(() => ranProbe(1), jobWaitMs, 'the job on the first primary')).host).toBe(
      String(pair.primary.port),
    );
    // Killed once the first job's completion is stored, so that only the second job waits for the new primary
    // (a completion cut by the kill is retried: src/platform/jobs-connection.test.ts).
    await waitFor(
      async () => {
        let left = 1;
        await withSql(pair.primary.url(database), async (sql) => {
          const [row] = await sql<
            { count: number }[]
          >`select count(*)::int as count from graphile_worker.jobs`;
          left = row?.count ?? 1;
        });
        return left === 0 ? true : undefined;
      },
      jobWaitMs,
      'the first job to be completed',
    );
    const lostBefore = (await jobConnectionsLost.get()).values[0]?.value ?? 0;

    pair.primary.kill();
    await waitFor(async () => (pair.primary.alive() ? undefined : true), 5_000, 'the primary to die');
    await withSql(pair.replica.url('postgres'), async (sql) => {
      await sql`select pg_promote(true, 30)`;
      await sql`alter system set synchronous_standby_names = ''`;
      await sql`select pg_reload_conf()`;
    });

    await enqueueProbe(pair.replica.url(database), 2);
    expect((await waitFor(() => ranProbe(2), jobWaitMs, 'the job on the promoted replica')).host).toBe(
      String(pair.replica.port),
    );
    expect((await jobConnectionsLost.get()).values[0]?.value).toBeGreaterThan(lostBefore);
  });
});
