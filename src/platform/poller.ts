import type { Logger } from './logging.ts';
import { countWorkerRun, registerLoop } from './metrics.ts';

/**
 * Runs a background round in a worker process again and again: at once while it reports it was
 * busy or when woken, every `pollMs` otherwise. The rounds themselves must be safe to run anywhere
 * and to stop at any point (the settlement engine and the deposit watcher are): a process killed
 * mid-round leaves nothing the next round cannot pick up. Each round (and each failed preparation)
 * is counted in worker_runs_total under `worker`, the name the operators' alerts use.
 */
export type Poller = { wake(): void; stop(): Promise<void> };

/** How long shutdown waits for a round in flight. */
export const roundDrainMsMax = 2_000;

export function startPoller(options: {
  name: string;
  /** The `worker` label of its runs (`payout` for the settlement engine). */
  worker: string;
  round: () => Promise<boolean>;
  pollMs: number;
  logger: Logger;
  prepare?: () => Promise<void>;
}): Poller {
  registerLoop(options.worker, options.pollMs / 1_000, 'process');
  let stopped = false;
  let wakeUp: (() => void) | undefined;
  let woken = false;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken || stopped) {
        woken = false;
        resolve();
        return;
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        woken = false;
        resolve();
      }
      wakeUp = done;
    });
  const running = (async () => {
    // Preparation (channel bootstrap) runs here, not at start, so a slow network never delays
    // readiness; it is retried every poll until it succeeds.
    let prepared = options.prepare === undefined;
    while (!stopped && !prepared) {
      try {
        await options.prepare?.();
        prepared = true;
      } catch (error) {
        countWorkerRun(options.worker, 'failed');
        options.logger.warn({ err: error, poller: options.name }, `${options.name} not ready yet`);
        await sleep(options.pollMs);
      }
    }
    while (!stopped) {
      let busy = false;
      try {
        busy = await options.round();
        countWorkerRun(options.worker, 'success');
      } catch (error) {
        countWorkerRun(options.worker, 'failed');
        options.logger.error({ err: error, poller: options.name }, `${options.name} round failed`);
      }
      if (!busy) await sleep(options.pollMs);
    }
  })();
  return {
    wake: () => {
      woken = true;
      wakeUp?.();
    },
    stop: async () => {
      stopped = true;
      wakeUp?.();
      // A round may be waiting on the network (a submission is held open until a ledger closes).
      // Leaving it is safe, the envelope is stored, so shutdown waits only a bounded time.
      let timer: NodeJS.Timeout | undefined;
      const bounded = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, roundDrainMsMax);
      });
      await Promise.race([running, bounded]);
      clearTimeout(timer);
    },
  };
}
