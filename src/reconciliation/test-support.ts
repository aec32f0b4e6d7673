import type { Sql } from '../platform/db/types.ts';
import { createLogger } from '../platform/logging.ts';
import { registry } from '../platform/metrics.ts';
import type { ReconciliationDeps, ReconciliationSettings } from './context.ts';
import { type FindingRow, selectOpenFindings } from './data.ts';

/** Shared by the reconciliation tests: dependencies on a test database, metric and finding reads. */

export const testSettings: ReconciliationSettings = {
  stuckAfterSeconds: 1_800,
  stuckReleaseAfterSeconds: 1_800,
  streamRunStuckAfterSeconds: 900,
  streamOverdueAfterSeconds: 900,
  chainDriftToleranceStroops: 0n,
  chainDriftGraceSeconds: 0,
  payoutVolumeFactor: 5,
  payoutVolumeDailyTotals: new Map(),
  lateCommitSecondsMax: 600,
};

export function testDeps(
  sql: Sql,
  overrides: Partial<Omit<ReconciliationDeps, 'sql' | 'settings'>> & {
    settings?: Partial<ReconciliationSettings>;
  } = {},
): ReconciliationDeps {
  return {
    sql,
    logger: createLogger(process.env.SETTLEDESK_TEST_LOG === 'debug' ? 'debug' : 'silent', process.stderr),
    ...overrides,
    settings: { ...testSettings, ...overrides.settings },
  };
}

/** The sum of a metric's values whose labels include `labels`. */
export async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return found
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

export async function openFindings(sql: Sql, kind: string): Promise<FindingRow[]> {
  return selectOpenFindings(sql, { kind, limit: 100 });
}
