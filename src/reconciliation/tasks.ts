import type { TaskMap } from '../platform/jobs.ts';
import type { Runtime } from '../platform/runtime.ts';
import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { loadWallet } from '../stellar/wallet.ts';
import { type ChainAccess, type ReconciliationDeps, reconciliationSettings } from './context.ts';
import { detectors } from './detectors.ts';
import { type DetectorName, detectorNames } from './findings.ts';
import { runDetector } from './runner.ts';

/**
 * One graphile-worker task per detector, `reconcile_<detector>`, every minute. Each run is
 * incremental, so a minute is plenty; the job key keeps at most one waiting job per detector
 * (a process without Stellar never takes the Stellar ones, and they do not pile up), and one
 * attempt per job: the next minute is the retry.
 */

export const reconcileTaskOf = (detector: DetectorName) => `reconcile_${detector}`;

/**
 * Every detector run counts in worker_runs_total as `worker="reconciliation"`, the name the
 * operators' alerts use; which detector ran is in reconciliation_runs_total{detector,result}. A
 * `detector` label on worker_runs_total would give it a label set no other worker has, and counting
 * each run under both names would double every sum over workers.
 */
export const reconciliationWorker = 'reconciliation';
const reconcileTasks = new Set<string>(detectorNames.map(reconcileTaskOf));

export function reconciliationWorkerOf(task: string): string | undefined {
  return reconcileTasks.has(task) ? reconciliationWorker : undefined;
}

export const reconciliationCrontab = detectorNames
  .map((detector) => {
    const task = reconcileTaskOf(detector);
    return `* * * * * ${task} ?jobKey=${task}&max=1`;
  })
  .join('\n');

/** The tasks for these dependencies: the Stellar detectors only when `chain` can be had. */
export function detectorTasks(
  deps: Omit<ReconciliationDeps, 'chain'>,
  chain: (() => Promise<ChainAccess>) | undefined,
): TaskMap {
  const tasks: Record<string, TaskMap[string]> = {};
  for (const detector of detectorNames) {
    const needsChain = detectors[detector].needsChain;
    if (needsChain && chain === undefined) continue;
    tasks[reconcileTaskOf(detector)] = async () => {
      await runDetector({ ...deps, chain: needsChain && chain ? await chain() : undefined }, detector);
    };
  }
  return tasks;
}

/** This process's tasks; with Stellar endpoints, the hot wallet is read once, at the first run that needs it. */
export function reconciliationTasks(runtime: Runtime, stellar: StellarEndpoints | undefined): TaskMap {
  let access: Promise<ChainAccess> | undefined;
  const chain = stellar
    ? () =>
        (access ??= loadWallet(runtime.config).then(
          (wallet) => ({ horizonUrls: stellar.horizonUrls, hotWallet: wallet.hotWallet.publicKey() }),
          (error: unknown) => {
            access = undefined;
            throw error;
          },
        ))
    : undefined;
  return detectorTasks(
    {
      sql: runtime.sql,
      logger: runtime.logger,
      settings: reconciliationSettings(runtime.config.reconciliation),
    },
    chain,
  );
}
