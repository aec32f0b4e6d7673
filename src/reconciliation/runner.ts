import { randomUUID } from 'node:crypto';
import { OperatingError } from '../platform/errors.ts';
import { type DetectorContext, leaseSeconds, type Progress, type ReconciliationDeps } from './context.ts';
import { claimLease, releaseLease } from './data.ts';
import { detectors } from './detectors.ts';
import { type DetectorName, FindingsTally } from './findings.ts';
import { detectorRuns, findingsCreated, refreshFromDatabase } from './metrics.ts';

/**
 * Runs one detector: takes its lease (one process at a time; another one busy is not an error),
 * runs it, releases the lease recording success, then counts new findings and reads the gauges
 * back from the database. The one public entry point: the scheduled tasks, the CLI and the
 * benchmarks all call `runDetector`.
 */

export type RunOptions = {
  /** Rebuild from the beginning of history (the CLI's --full). */
  full?: boolean;
  onProgress?: Progress;
  /** How long to wait for another process's lease before reporting `busy` (0: do not wait). */
  leaseWaitMs?: number;
};

export type RunReport = {
  detector: DetectorName;
  /** completed: everything up to now was examined; behind: stopped at its per-run bound; busy: another process holds it. */
  outcome: 'completed' | 'behind' | 'busy';
  durationMs: number;
  scanned: number;
  findings: { created: number; seen: number; resolved: number };
};

const leasePollMs = 250;

async function claim(
  deps: ReconciliationDeps,
  name: DetectorName,
  waitMs: number,
): Promise<string | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const lease = randomUUID();
    if (await claimLease(deps.sql, name, lease, leaseSeconds)) return lease;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, leasePollMs));
  }
}

export async function runDetector(
  deps: ReconciliationDeps,
  name: DetectorName,
  options: RunOptions = {},
): Promise<RunReport> {
  const detector = detectors[name];
  if (detector.needsChain && deps.chain === undefined) {
    throw new OperatingError(`detector ${name} reads Stellar: run it where Stellar endpoints are configured`);
  }
  const started = performance.now();
  const findings = new FindingsTally();
  const lease = await claim(deps, name, options.leaseWaitMs ?? 0);
  if (lease === undefined) {
    detectorRuns.inc({ detector: name, result: 'success' });
    deps.logger.info({ detector: name }, 'reconciliation detector busy in another process');
    return {
      detector: name,
      outcome: 'busy',
      durationMs: performance.now() - started,
      scanned: 0,
      findings: { created: 0, seen: 0, resolved: 0 },
    };
  }
  const context: DetectorContext = {
    ...deps,
    detector: name,
    lease,
    full: options.full ?? false,
    progress: options.onProgress ?? (() => {}),
    findings,
  };
  let outcome: Awaited<ReturnType<typeof detector.run>>;
  try {
    outcome = await detector.run(context);
  } catch (error) {
    detectorRuns.inc({ detector: name, result: 'failed' });
    await releaseLease(deps.sql, name, lease, false).catch(() => undefined);
    deps.logger.error(
      { detector: name, err: error, durationMs: Math.round(performance.now() - started) },
      'reconciliation detector failed',
    );
    throw error;
  } finally {
    for (const [kind, count] of findings.created) findingsCreated.inc({ kind }, count);
  }
  await releaseLease(deps.sql, name, lease, outcome.complete);
  await refreshFromDatabase(deps.sql);
  detectorRuns.inc({ detector: name, result: 'success' });
  const report: RunReport = {
    detector: name,
    outcome: outcome.complete ? 'completed' : 'behind',
    durationMs: performance.now() - started,
    scanned: outcome.scanned,
    findings: { created: findings.createdCount, seen: findings.seen, resolved: findings.resolved },
  };
  const line = { ...report, durationMs: Math.round(report.durationMs) };
  if (findings.createdCount > 0) deps.logger.warn(line, 'reconciliation found new problems');
  else deps.logger.info(line, 'reconciliation detector ran');
  return report;
}
