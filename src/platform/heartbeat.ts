import type { Executor } from './db/types.ts';
import type { DependencyCheck } from './health.ts';
import type { Task } from './jobs.ts';

export const heartbeatTask = 'platform_heartbeat';
/** Runs every minute; three missed beats mean no worker is taking jobs. */
export const heartbeatCrontab = `* * * * * ${heartbeatTask}`;
/** Three missed beats: no worker has taken a job for a while. */
export const heartbeatStaleSeconds = 180;
/** Ten missed beats: no worker is running (a deploy or a restart takes less). */
export const heartbeatDownSeconds = 600;

export type WorkersStatus = {
  status: 'ok' | 'stale' | 'down';
  lastHeartbeatAgeSeconds: number | null;
  detail: string;
};

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

/** The workers judged by the newest heartbeat's age; none at all means none has ever run here. */
export async function workersStatus(db: Executor): Promise<WorkersStatus> {
  const age = await selectLatestHeartbeatAgeSeconds(db);
  if (age === null)
    return { status: 'down', lastHeartbeatAgeSeconds: null, detail: 'no worker heartbeat recorded' };
  const seconds = Math.round(age);
  const detail = `last heartbeat ${seconds} s ago`;
  if (age > heartbeatDownSeconds) return { status: 'down', lastHeartbeatAgeSeconds: seconds, detail };
  if (age > heartbeatStaleSeconds) return { status: 'stale', lastHeartbeatAgeSeconds: seconds, detail };
  return { status: 'ok', lastHeartbeatAgeSeconds: seconds, detail };
}

/**
 * Not critical: the API still serves without workers, but on-call must see that jobs are stuck.
 * Readiness says `degraded` for stale and down alike (`dependency_up` 0.5); the triage summary
 * tells them apart.
 */
export function workersCheck(db: Executor): DependencyCheck {
  return {
    name: 'workers',
    critical: false,
    check: async () => {
      const workers = await workersStatus(db);
      return workers.status === 'ok' ? { status: 'ok' } : { status: 'degraded', detail: workers.detail };
    },
  };
}
