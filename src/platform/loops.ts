import type { DependencyCheck } from './health.ts';

/**
 * The periodic loops of this process and when each last succeeded, kept beside the metrics
 * (registerLoop and countWorkerRun in metrics.ts feed it) so that readiness and the loop reporter
 * judge the same figures Prometheus scrapes.
 *
 * `process` loops run in every process that starts them (the settlement engine, the deposit
 * watcher, the status probe, the loop reporter): this process alone moves their last success, so a
 * stale one means this process is wedged. `shared` loops are cron tasks: graphile-worker queues
 * each tick once and any worker process may run it, so one process's copy says nothing about the
 * process; only the newest success across processes does (the alert and the triage part).
 */
export type LoopScope = 'process' | 'shared';
export type LoopState = {
  worker: string;
  scope: LoopScope;
  intervalSeconds: number;
  lastSuccessMs: number;
};

/** A loop is stale after this many of its intervals without a success (as WorkerLoopStale says). */
export const loopStaleIntervals = 3;
/**
 * The floor under that, the same as WorkerLoopStale's `clamp_min(…, 180)` in
 * ops/prometheus/alerts.yml (a test keeps them equal): a sub-second loop whose round waits on the
 * network for a few seconds is slow, not wedged, and Prometheus sees a success only once a scrape.
 * LOOP_STALE_SECONDS_MIN lowers it for this process's readiness and triage (drills), never the alert.
 */
export const loopStaleSecondsMinDefault = 180;

const loops = new Map<string, LoopState>();

export function noteLoop(worker: string, intervalSeconds: number, scope: LoopScope, nowMs: number): void {
  loops.set(worker, { worker, scope, intervalSeconds, lastSuccessMs: nowMs });
}

/** Moves a registered loop's last success; a task that is not a loop is not tracked here. */
export function noteLoopSuccess(worker: string, nowMs: number): void {
  const loop = loops.get(worker);
  if (loop !== undefined) loop.lastSuccessMs = nowMs;
}

export function loopStates(): LoopState[] {
  return [...loops.values()].map((loop) => ({ ...loop }));
}

export function staleAfterSeconds(intervalSeconds: number, staleSecondsMin: number): number {
  return Math.max(loopStaleIntervals * intervalSeconds, staleSecondsMin);
}

/** This process's own loops that have not succeeded within their stale-after time. */
export function wedgedLoops(
  states: readonly LoopState[],
  staleSecondsMin: number,
  nowMs: number,
): { worker: string; ageSeconds: number; staleAfterSeconds: number }[] {
  return states
    .filter((loop) => loop.scope === 'process')
    .map((loop) => ({
      worker: loop.worker,
      ageSeconds: Math.round((nowMs - loop.lastSuccessMs) / 1_000),
      staleAfterSeconds: staleAfterSeconds(loop.intervalSeconds, staleSecondsMin),
    }))
    .filter((loop) => loop.ageSeconds > loop.staleAfterSeconds);
}

/**
 * Readiness of this process's own loops: `down` when one is wedged. Critical in `settledesk
 * worker`, whose job is running them; not in `serve`, where taking an API instance out of the
 * load balancer because a detector is wedged would add an outage to the incident
 * (docs/operations.md).
 */
export function ownLoopsCheck(options: {
  critical: boolean;
  staleSecondsMin: number;
  clock?: () => number;
}): DependencyCheck {
  return {
    name: 'loops',
    critical: options.critical,
    check: async () => {
      const states = loopStates();
      const wedged = wedgedLoops(states, options.staleSecondsMin, options.clock?.() ?? Date.now());
      if (wedged.length === 0) {
        const own = states.filter((loop) => loop.scope === 'process').length;
        return { status: 'ok', detail: `${own} loops of this process succeeded in time` };
      }
      const named = wedged.map(
        (loop) =>
          `${loop.worker} last succeeded ${loop.ageSeconds} s ago (stale after ${loop.staleAfterSeconds} s)`,
      );
      return { status: 'down', detail: named.join('; ') };
    },
  };
}
