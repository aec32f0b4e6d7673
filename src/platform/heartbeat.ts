import type { Executor } from './db/types.ts';
import type { DependencyCheck } from './health.ts';
import type { Task } from './jobs.ts';

export const heartbeatTask = 'platform_heartbeat';
/** Runs every minute; three missed beats mean no worker is taking jobs. */
export const heartbeatCrontab = `* * * * * ${heartbeatTask}`;
const heartbeatStaleSeconds = 180;

async function upsertHeartbeat(db: Executor, workerId: string): Promise<void> {
  await db`
    insert into worker_heartbeats (worker_id, seen_at) values (${workerId}::text, now())
    on conflict (worker_id) do update set seen_at = excluded.seen_at`;
}

async function selectLatestHeartbeatAgeSeconds(db: Executor): Promise<number | null> {
  const [row] = await db<{ ageSeconds: number | null }[]>`
    select extract(epoch from now() - max(seen_at))::float8 as "ageSeconds" from worker_heartbeats`;
  return row?.ageSeconds ?? null;
}

export function heartbeat(db: Executor): Task {
  return async (_payload, helpers) => {
    await upsertHeartbeat(db, helpers.job.locked_by ?? 'unknown');
  };
}

/** Not critical: the API still serves without workers, but on-call must see that jobs are stuck. */
export function workersCheck(db: Executor): DependencyCheck {
  return {
    name: 'workers',
    critical: false,
    check: async () => {
      const age = await selectLatestHeartbeatAgeSeconds(db);
      if (age === null) return { status: 'degraded', detail: 'no worker heartbeat recorded yet' };
      if (age > heartbeatStaleSeconds)
        return { status: 'degraded', detail: `last heartbeat ${Math.round(age)} s ago` };
      return { status: 'ok' };
    },
  };
}
