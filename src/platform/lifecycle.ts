/** Stops a part of a process: a listener, a worker, a poller, a pool. */
export type Stop = () => Promise<void>;

/**
 * Runs every stop in order, even after one fails, then rethrows the first failure. A start that
 * fails half way calls this with whatever it had started, so nothing it opened outlives it (a
 * timer left behind keeps reloading from a closed pool, a listener keeps its port).
 */
export async function stopAll(stops: readonly (Stop | undefined)[]): Promise<void> {
  let failure: { error: unknown } | undefined;
  for (const stop of stops) {
    if (stop === undefined) continue;
    try {
      await stop();
    } catch (error) {
      failure ??= { error };
    }
  }
  if (failure !== undefined) throw failure.error;
}
