import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  cellTools,
  locateTool,
  postgresqlServer,
  promtool,
  ToolMissingError,
  toolEnv,
} from '../../src/drills/tools.ts';
import { connect, withDatabase } from '../../src/platform/db/connect.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/platform/db/embedded.ts';
import { migrate } from '../../src/platform/db/migrate.ts';
import { createLogger } from '../../src/platform/logging.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseAdminUrl: string;
    templateDatabase: string;
    runId: string;
  }
}

/** Durability is pointless for a throw-away test cluster; turning it off makes tests much faster. */
const testClusterSettings = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '500',
};

/**
 * Starts PostgreSQL for the whole run (DATABASE_URL when set, otherwise an embedded cluster in a
 * temporary folder) and builds one migrated template database; each test file clones it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const logger = createLogger('warn', process.stderr);
  await provideTools();
  let embedded: EmbeddedDatabase | undefined;
  let dataDir: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (adminUrl === undefined || adminUrl === '') {
    dataDir = await mkdtemp(join(process.env.SETTLEDESK_TEST_TMP ?? tmpdir(), 'settledesk-test-'));
    // mkdtemp makes the folder 0700; as root the cluster runs as `postgres`, which must enter it.
    await chmod(dataDir, 0o755);
    embedded = await startEmbeddedPostgres({
      dataDir,
      logger,
      settings: testClusterSettings,
      database: 'postgres',
    });
    adminUrl = embedded.url;
  }
  const runId = `${process.pid}_${Date.now()}`;
  const templateDatabase = `settledesk_template_${runId}`;
  const admin = connect({ url: adminUrl, poolMax: 1, logger });
  await admin.unsafe(`create database "${templateDatabase}"`);
  const templateUrl = withDatabase(adminUrl, templateDatabase);
  const template = connect({ url: templateUrl, poolMax: 2, logger });
  await migrate(template, templateUrl, logger);
  await template.end();
  project.provide('databaseAdminUrl', adminUrl);
  project.provide('templateDatabase', templateDatabase);
  project.provide('runId', runId);

  return async () => {
    const leftovers = await admin<{ datname: string }[]>`
      select datname from pg_database where datname like ${`settledesk_t_${runId}_%`} or datname = ${templateDatabase}`;
    for (const { datname } of leftovers)
      await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    await admin.end();
    await embedded?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  };
}

/**
 * Runbook cells call psql, jq and curl, the db-failover drill runs PostgreSQL's server binaries
 * and the ops tests run promtool: each is found on this machine or unpacked once (src/drills/tools.ts) before any test
 * runs, and the cells' tools are put on PATH for every test process. A machine that has them all
 * keeps its PATH. One message names everything that is missing.
 */
async function provideTools(): Promise<void> {
  const results = await Promise.allSettled(
    [...cellTools, postgresqlServer, promtool].map((spec) => locateTool(spec)),
  );
  const problems = results.flatMap((result) =>
    result.status === 'rejected'
      ? [result.reason instanceof Error ? result.reason.message : String(result.reason)]
      : [],
  );
  if (problems.length > 0)
    throw new ToolMissingError(['The tests need tools that this machine lacks:', ...problems].join('\n\n'));
  const located = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  Object.assign(process.env, toolEnv(located.slice(0, cellTools.length)));
}
