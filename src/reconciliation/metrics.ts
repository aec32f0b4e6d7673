import { Counter, Gauge } from 'prom-client';
import { settlingStates } from '../payouts/states.ts';
import type { Executor } from '../platform/db/types.ts';
import { registry } from '../platform/metrics.ts';
import { countOpenFindingsByKind, selectLastSuccesses } from './data.ts';
import { detectorNames, findingKinds } from './findings.ts';

/**
 * Reconciliation metrics. The gauges are read back from the database after every run, so every
 * process that runs detectors reports the same figures whichever of them ran last (alert on
 * max()); a process reports zero open findings until it has run a detector once.
 */

export const findingsOpen = new Gauge({
  name: 'reconciliation_findings_open',
  help: 'Open reconciliation findings by kind, as stored in the database after the latest run.',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const findingsCreated = new Counter({
  name: 'reconciliation_findings_total',
  help: 'Reconciliation findings created by kind (a finding seen again is not counted again).',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const payoutsStuck = new Gauge({
  name: 'payouts_stuck',
  help: 'Payouts not terminal after the stuck threshold (RECONCILIATION_STUCK_AFTER_SECONDS), by state.',
  labelNames: ['state'] as const,
  registers: [registry],
});

export const lastSuccess = new Gauge({
  name: 'reconciliation_last_success_timestamp_seconds',
  help: 'Unix time of the latest complete run of each reconciliation detector (any process).',
  labelNames: ['detector'] as const,
  registers: [registry],
});

export const detectorRuns = new Counter({
  name: 'reconciliation_runs_total',
  help: 'Reconciliation detector runs by detector and result (success or failed; busy elsewhere is a success).',
  labelNames: ['detector', 'result'] as const,
  registers: [registry],
});

export const stuckStates = settlingStates;

for (const kind of findingKinds) {
  findingsCreated.inc({ kind }, 0);
  findingsOpen.set({ kind }, 0);
}
for (const state of stuckStates) payoutsStuck.set({ state }, 0);
for (const detector of detectorNames) {
  detectorRuns.inc({ detector, result: 'success' }, 0);
  detectorRuns.inc({ detector, result: 'failed' }, 0);
}

/** Sets the open-findings gauge and the last-success gauge from the database. */
export async function refreshFromDatabase(db: Executor): Promise<void> {
  const [open, successes] = await Promise.all([countOpenFindingsByKind(db), selectLastSuccesses(db)]);
  const counts = new Map(open.map((row) => [row.kind, row.count]));
  for (const kind of findingKinds) findingsOpen.set({ kind }, counts.get(kind) ?? 0);
  for (const { detector, lastSuccessAt } of successes) {
    if (lastSuccessAt !== null) lastSuccess.set({ detector }, lastSuccessAt.getTime() / 1_000);
  }
}
