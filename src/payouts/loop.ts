import type { Logger } from '../platform/logging.ts';
import type { SettlementEngine } from './engine.ts';

/**
 * Runs settlement rounds in a worker process: at once when woken (a payout was accepted), every
 * `pollMs` otherwise. Crash safety does not depend on it: any process may run a round, and a
 * process killed mid-round leaves only stored attempts, which the next round looks up by hash.
 */
export type SettlementLoop = { wake(): void; stop(): Promise<void> };

/** How long shutdown waits for a round in flight. */
export const roundDrainMsMax = 2_000;

export function startSettlementLoop(
  engine: SettlementEngine,
  options: { pollMs: number; logger: Logger; prepare?: () => Promise<void> },
): SettlementLoop {
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
        options.logger.warn({ err: error }, 'settlement engine not ready yet');
        await sleep(options.pollMs);
      }
    }
    while (!stopped) {
      let busy = false;
      try {
        const report = await engine.runRound();
        busy = report.built > 0 || report.resolved > 0;
      } catch (error) {
        options.logger.error({ err: error }, 'settlement round failed');
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
