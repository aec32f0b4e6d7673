import { Counter, Gauge } from 'prom-client';
import type { Logger } from '../logging.ts';
import { databaseFigures, registry } from '../metrics.ts';
import { type Poller, startPoller } from '../poller.ts';
import type { Executor, Sql } from './types.ts';

/**
 * What the database server says about itself, read when scraped (`databaseFigures`): replication
 * lag, sessions of this database by state, sessions waiting for a lock. Three small catalogue
 * reads per `serverFiguresCacheMs` per process, whatever the number of scrapers. And its
 * availability, from a probe every `databaseProbeIntervalMs` in each long-running process.
 */

export const serverFiguresCacheMs = 5_000;
/** Standbys reported by name; a primary with more is unusual, and the label stays bounded. */
export const standbysMax = 16;
/** How often `serve` and `worker` probe the database, and how long one probe may take. */
export const databaseProbeIntervalMs = 5_000;
export const databaseProbeTimeoutMs = 2_000;

/** pg_stat_activity's states as label values; anything else (a future state) is `other`. */
const sessionStates: Readonly<Record<string, string>> = {
  active: 'active',
  idle: 'idle',
  'idle in transaction': 'idle_in_transaction',
  'idle in transaction (aborted)': 'idle_in_transaction_aborted',
  'fastpath function call': 'fastpath_function_call',
  disabled: 'disabled',
};
/** A session of another role whose state this role may not see (no pg_read_all_stats). */
const hiddenState = 'unknown';
const stateLabels = [...Object.values(sessionStates), hiddenState, 'other'];
/** The `standby` label when the server this process reads is itself a standby. */
export const selfStandby = 'self';

export type ServerFigures = {
  /** Replay lag in seconds by standby; empty on a primary without visible standbys. */
  lagSeconds: Map<string, number>;
  /** Standbys streaming from this primary that this role can see; 0 on a standby. */
  standbys: number;
  sessions: Map<string, number>;
  sessionsMax: number;
  locksWaiting: number;
};

type RecoveryRow = { inRecovery: boolean; lagSeconds: number | null };
type StandbyRow = { name: string; state: string | null; lagSeconds: number | null };

/**
 * On a standby, replay lag is how old the last replayed transaction is, unless everything
 * received is replayed: an idle primary sends nothing, and the age alone would grow without lag.
 */
async function selectRecovery(db: Executor): Promise<RecoveryRow> {
  const [row] = await db<RecoveryRow[]>`
    select pg_is_in_recovery() as "inRecovery",
      case when pg_last_wal_receive_lsn() is not distinct from pg_last_wal_replay_lsn() then 0
        else date_part('epoch', now() - pg_last_xact_replay_timestamp()) end::float8 as "lagSeconds"`;
  return row ?? { inRecovery: false, lagSeconds: null };
}

/**
 * On a primary, each standby's replay_lag. PostgreSQL shows it as null once a standby has caught
 * up and nothing is being written (lag 0), and hides `state` and the lags from a role without
 * pg_read_all_stats (not known: left out, not reported as 0).
 */
function selectStandbys(db: Executor): Promise<StandbyRow[]> {
  return db<StandbyRow[]>`
    select application_name as name, state, date_part('epoch', replay_lag)::float8 as "lagSeconds"
    from pg_stat_replication
    order by application_name
    limit ${standbysMax}::int`;
}

type SessionRow = { state: string | null; count: number };

function selectSessions(db: Executor): Promise<SessionRow[]> {
  return db<SessionRow[]>`
    select state, count(*)::int as count
    from pg_stat_activity
    where datname = current_database() and backend_type = 'client backend'
    group by state`;
}

/** Sessions of this database waiting for a lock another session holds, and the server's limit. */
async function selectLocks(db: Executor): Promise<{ waiting: number; sessionsMax: number }> {
  const [row] = await db<{ waiting: number; sessionsMax: number }[]>`
    select count(*)::int as waiting, current_setting('max_connections')::int as "sessionsMax"
    from pg_locks l join pg_stat_activity a on a.pid = l.pid
    where not l.granted and a.datname = current_database()`;
  return row ?? { waiting: 0, sessionsMax: 0 };
}

export async function readServerFigures(db: Executor): Promise<ServerFigures> {
  const [recovery, standbys, sessionRows, locks] = await Promise.all([
    selectRecovery(db),
    selectStandbys(db),
    selectSessions(db),
    selectLocks(db),
  ]);
  const lagSeconds = new Map<string, number>();
  let visible = 0;
  if (recovery.inRecovery && recovery.lagSeconds !== null) lagSeconds.set(selfStandby, recovery.lagSeconds);
  if (!recovery.inRecovery) {
    for (const standby of standbys.filter((row) => row.state !== null)) {
      visible += 1;
      const name = standby.name === '' ? 'unnamed' : standby.name;
      lagSeconds.set(name, Math.max(lagSeconds.get(name) ?? 0, standby.lagSeconds ?? 0));
    }
  }
  const sessions = new Map(stateLabels.map((state) => [state, 0]));
  for (const row of sessionRows) {
    const state = row.state === null ? hiddenState : (sessionStates[row.state] ?? 'other');
    sessions.set(state, (sessions.get(state) ?? 0) + row.count);
  }
  return {
    lagSeconds,
    standbys: visible,
    sessions,
    sessionsMax: locks.sessionsMax,
    locksWaiting: locks.waiting,
  };
}

const noFigures: ServerFigures = {
  lagSeconds: new Map(),
  standbys: 0,
  sessions: new Map(),
  sessionsMax: 0,
  locksWaiting: 0,
};

/** Where the figures are read from: the runtime's pool (src/platform/runtime.ts). */
export const serverFigures = databaseFigures(readServerFigures, noFigures, serverFiguresCacheMs);

export const replicationLag = new Gauge({
  name: 'db_replication_lag_seconds',
  help: `Replay lag of each standby streaming from the primary this process uses (by application_name, at most ${standbysMax}), or standby="${selfStandby}" when that server is itself a standby.`,
  labelNames: ['standby'] as const,
  registers: [registry],
  async collect() {
    const figures = await serverFigures.current();
    this.reset();
    for (const [standby, seconds] of figures.lagSeconds) this.set({ standby }, seconds);
  },
});

export const replicationStandbys = new Gauge({
  name: 'db_replication_standbys',
  help: 'Standbys streaming from the primary this process uses, as far as its role can see (pg_read_all_stats).',
  registers: [registry],
  async collect() {
    this.set((await serverFigures.current()).standbys);
  },
});

export const sessions = new Gauge({
  name: 'db_connections',
  help: "Client sessions of this process's database on the server (every process and user), by state from pg_stat_activity.",
  labelNames: ['state'] as const,
  registers: [registry],
  async collect() {
    const figures = await serverFigures.current();
    this.reset();
    for (const [state, count] of figures.sessions) this.set({ state }, count);
  },
});

export const sessionsMax = new Gauge({
  name: 'db_connections_max',
  help: "The server's max_connections: every process's pool together must stay under it.",
  registers: [registry],
  async collect() {
    this.set((await serverFigures.current()).sessionsMax);
  },
});

export const locksWaiting = new Gauge({
  name: 'db_locks_waiting',
  help: "Lock requests of sessions of this process's database that wait for another session (pg_locks, not granted).",
  registers: [registry],
  async collect() {
    this.set((await serverFigures.current()).locksWaiting);
  },
});

export type ProbeResult = 'success' | 'failed';

export const databaseUp = new Gauge({
  name: 'db_up',
  help: `1 when the latest probe of this process answered select 1 within ${databaseProbeTimeoutMs} ms, else 0.`,
  registers: [registry],
});

export const databaseProbes = new Counter({
  name: 'db_probes_total',
  help: `Probes of the database (select 1 through the pool, within ${databaseProbeTimeoutMs} ms) by result: the availability objective counts them.`,
  labelNames: ['result'] as const,
  registers: [registry],
});
for (const result of ['success', 'failed'] as const) databaseProbes.inc({ result }, 0);

/**
 * One probe. A query that does not answer in time counts as failed and is left to finish on its
 * own; while it has not, the next probes count as failed without adding another.
 */
export function databaseProber(
  sql: Sql,
  timeoutMs: number = databaseProbeTimeoutMs,
): () => Promise<ProbeResult> {
  let pending = false;
  return async () => {
    if (pending) return 'failed';
    pending = true;
    const answered = sql`select 1`.then(
      () => true,
      () => false,
    );
    void answered.finally(() => {
      pending = false;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return (await Promise.race([answered, late])) ? 'success' : 'failed';
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * The probe loop of a long-running process (`serve`, `worker`): `db_up` and `db_probes_total`.
 * A failed probe is a result, not a failed round: `worker_runs_total{worker="db_probe"}` counts
 * the loop itself, so `WorkerLoopStale` fires only when the loop stops.
 */
export function startDatabaseProbe(sql: Sql, logger: Logger): Poller {
  const probe = databaseProber(sql);
  let previous: ProbeResult | undefined;
  return startPoller({
    name: 'database probe',
    worker: 'db_probe',
    round: async () => {
      const result = await probe();
      databaseProbes.inc({ result });
      databaseUp.set(result === 'success' ? 1 : 0);
      if (result === 'failed' && previous !== 'failed')
        logger.warn({ timeoutMs: databaseProbeTimeoutMs }, 'database probe failed');
      if (result === 'success' && previous === 'failed') logger.info('database probe succeeded again');
      previous = result;
      return false;
    },
    pollMs: databaseProbeIntervalMs,
    logger,
  });
}
