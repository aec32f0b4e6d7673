import { loadConfig } from '../src/platform/config.ts';
import type { Sql } from '../src/platform/db/types.ts';
import { createLogger } from '../src/platform/logging.ts';
import { type ReconciliationSettings, reconciliationSettings } from '../src/reconciliation/context.ts';
import { stuckStates } from '../src/reconciliation/metrics.ts';
import { runDetector } from '../src/reconciliation/runner.ts';
import { stuckFindingsMax, stuckRunsMax } from '../src/reconciliation/stuck-settlements.ts';
import { countOverdueStreams } from '../src/streams/data.ts';
import { runOutcomes } from '../src/streams/states.ts';
import { pgbenchLatenciesMs, pgbenchScript } from './support.ts';

/**
 * The `stuck_settlements` detector as the reconciliation task runs it (`runDetector`: the lease,
 * the detector's repeatable-read transaction, the lease released, the gauges read back), over the
 * streams as they stand, with `stuckRunsPlanted` settlement runs left `running` past
 * `STREAM_RUN_STUCK_AFTER_SECONDS` before each run, so every run abandons runs and records their
 * findings as well as refreshing the overdue streams' findings. Reference from the same run:
 * pgbench running the same reads and writes in one script (each select feeding the write after it
 * in one statement), which also plants its own stuck runs inside its transaction. Both write as
 * many dead row versions (findings refreshed, runs abandoned), each side after a vacuum.
 */

/** Runs left `running` past the threshold before each detector run (a few crashed processes). */
export const stuckRunsPlanted = 5;
/** Timed detector runs, and pgbench transactions, in each state: both medians. */
const detectorRepeats = 25;
const detectorName = 'stuck_settlements';

export type DetectorFigures = {
  overdue: number;
  ms: number;
  pgbenchMs: number;
  /** Findings one run refreshed or created: the stuck runs plus the overdue streams, up to the bound. */
  seen: number;
};

function settings(): ReconciliationSettings {
  return reconciliationSettings(loadConfig({}).reconciliation);
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Settlement runs still `running`, started `olderThanSeconds` + 5 min ago, as a crashed process leaves them. */
async function plantStuckRuns(sql: Sql, olderThanSeconds: number): Promise<void> {
  await sql`
    insert into stream_settlement_runs (id, as_of, started_at)
    select gen_random_uuid(), t.at, t.at
    from (select now() - make_interval(secs => ${olderThanSeconds + 300}::int) as at) t,
         generate_series(1, ${stuckRunsPlanted}::int)`;
}

/** The dead row versions the other side left are vacuumed away before each side is measured. */
async function vacuumDetectorTables(sql: Sql): Promise<void> {
  await sql`vacuum analyze reconciliation_findings, stream_settlement_runs`;
}

type Work = { runs: number; runFindings: number; overdueSeen: number };

/** Runs abandoned, `stream_run_stuck` findings, and times open `stream_overdue` findings were seen. */
async function workDone(sql: Sql): Promise<Work> {
  const [row] = await sql<Work[]>`
    select (select count(*)::int from stream_settlement_runs where outcome = 'abandoned') as runs,
           (select count(*)::int from reconciliation_findings where kind = 'stream_run_stuck') as "runFindings",
           (select coalesce(sum(occurrences), 0)::int from reconciliation_findings
            where kind = 'stream_overdue' and resolved_at is null) as "overdueSeen"`;
  return row ?? { runs: 0, runFindings: 0, overdueSeen: 0 };
}

/**
 * The statements of one `runDetector('stuck_settlements')` with the data the service passes
 * between them kept in SQL: the stuck runs abandoned and their findings written in one statement,
 * the overdue streams read and their findings upserted in another. Like the detector, it writes
 * overdue findings only when some stream is overdue and resolves the rest only when the list is
 * complete (`overdue` < `stuckFindingsMax`). The stuck runs it abandons it first inserts itself.
 */
export function detectorScript(config: ReconciliationSettings, overdue: number): string {
  const states = `'{${stuckStates.join(',')}}'::text[]`;
  const payoutsOlder = `now() - make_interval(secs => ${config.stuckAfterSeconds})`;
  const runsOlder = `now() - make_interval(secs => ${config.streamRunStuckAfterSeconds})`;
  const streamsOlder = `now() - make_interval(secs => ${config.streamOverdueAfterSeconds})`;
  const upsert = `ON CONFLICT (kind, subject) WHERE resolved_at IS NULL DO UPDATE SET evidence = reconciliation_findings.evidence || excluded.evidence, last_seen_at = greatest(now(), reconciliation_findings.last_seen_at), occurrences = reconciliation_findings.occurrences + 1 RETURNING kind, subject, (xmax = 0) AS created`;
  const overdueStreams = `SELECT s.id, s.asset, a.precision, s.recipient_account_id, s.recipient_address, s.next_settlement_at, extract(epoch from now() - s.next_settlement_at)::float8 AS overdue_seconds, s.settled_minor, s.total_minor FROM streams s JOIN assets a ON a.code = s.asset WHERE s.state = 'active' AND s.next_settlement_at < ${streamsOlder} ORDER BY s.next_settlement_at, s.id LIMIT ${stuckFindingsMax}`;
  const statements = [
    `UPDATE reconciliation_checkpoints SET lease = gen_random_uuid(), lease_until = now() + make_interval(secs => 300), updated_at = now() WHERE detector = '${detectorName}' AND (lease_until IS NULL OR lease_until < now()) RETURNING cursor, state;`,
    'BEGIN ISOLATION LEVEL REPEATABLE READ;',
    `INSERT INTO stream_settlement_runs (id, as_of, started_at) SELECT gen_random_uuid(), t.at, t.at FROM (SELECT now() - make_interval(secs => ${config.streamRunStuckAfterSeconds + 300}) AS at) t, generate_series(1, ${stuckRunsPlanted});`,
    `SELECT state, count(*)::int FROM payouts WHERE state = any(${states}) AND created_at < ${payoutsOlder} GROUP BY state ORDER BY state;`,
    `SELECT p.id, p.state, p.asset, s.precision, p.amount_minor, p.destination, p.state_reason, p.created_at, p.updated_at FROM payouts p JOIN assets s ON s.code = p.asset WHERE p.state = any(${states}) AND p.created_at < ${payoutsOlder} ORDER BY p.created_at, p.id LIMIT ${stuckFindingsMax};`,
    `UPDATE reconciliation_findings f SET resolved_at = greatest(now(), f.last_seen_at) WHERE f.kind = 'stuck_settlement' AND f.resolved_at IS NULL AND NOT EXISTS (SELECT 1 FROM payouts p WHERE p.id = f.subject::uuid AND p.state = any(${states}) AND p.created_at < ${payoutsOlder}) RETURNING f.id;`,
    `WITH stuck AS (SELECT id FROM stream_settlement_runs WHERE outcome = 'running' AND started_at < ${runsOlder} ORDER BY started_at, id LIMIT ${stuckRunsMax}), abandoned AS (UPDATE stream_settlement_runs r SET outcome = 'abandoned', error = ${literal(runOutcomes.abandoned.reason)}, finished_at = now() FROM stuck WHERE r.id = stuck.id AND r.outcome = 'running' AND r.started_at < ${runsOlder} RETURNING r.id, r.as_of, r.started_at, r.streams_settled, r.amounts) INSERT INTO reconciliation_findings (kind, subject, evidence) SELECT 'stream_run_stuck', id::text, jsonb_build_object('runId', id, 'asOf', as_of, 'startedAt', started_at, 'runningSeconds', round(extract(epoch from now() - started_at)), 'streamsSettled', streams_settled, 'amountsMinor', amounts, 'closedAs', 'abandoned', 'thresholdSeconds', ${config.streamRunStuckAfterSeconds}) FROM abandoned ${upsert};`,
    ...(overdue > 0
      ? [
          `WITH overdue AS (${overdueStreams}) INSERT INTO reconciliation_findings (kind, subject, evidence) SELECT 'stream_overdue', id::text, jsonb_build_object('streamId', id, 'asset', asset, 'recipient', coalesce(recipient_account_id::text, recipient_address), 'nextSettlementAt', next_settlement_at, 'overdueSeconds', round(overdue_seconds), 'settled', (settled_minor / 10::numeric ^ precision)::text, 'total', (total_minor / 10::numeric ^ precision)::text, 'thresholdSeconds', ${config.streamOverdueAfterSeconds}) FROM overdue ${upsert};`,
        ]
      : []),
    ...(overdue < stuckFindingsMax
      ? [
          `UPDATE reconciliation_findings SET resolved_at = greatest(now(), last_seen_at) WHERE kind = 'stream_overdue' AND resolved_at IS NULL AND subject <> all(array(SELECT id::text FROM (${overdueStreams}) o)) RETURNING id;`,
        ]
      : []),
    'COMMIT;',
    `UPDATE reconciliation_checkpoints SET lease = null, lease_until = null, updated_at = now(), last_success_at = now() WHERE detector = '${detectorName}';`,
    'SELECT kind, count(*)::int FROM reconciliation_findings WHERE resolved_at IS NULL GROUP BY kind ORDER BY kind;',
    'SELECT detector, last_success_at FROM reconciliation_checkpoints ORDER BY detector;',
  ];
  return `${statements.join('\n')}\n`;
}

/**
 * One warm-up run (it creates or resolves the overdue findings of the state before), then
 * `detectorRepeats` timed runs, each after `stuckRunsPlanted` stuck runs are planted (not timed):
 * the median of `RunReport.durationMs`. Then pgbench on `detectorScript`. Throws when a run or
 * the reference did not do the work: the runs abandoned and the findings seen.
 */
export async function measureDetector(sql: Sql, url: string, label: string): Promise<DetectorFigures> {
  const config = settings();
  const deps = { sql, logger: createLogger('silent'), settings: config };
  const overdue = await countOverdueStreams(sql, config.streamOverdueAfterSeconds);
  const seen = stuckRunsPlanted + Math.min(overdue, stuckFindingsMax);
  await plantStuckRuns(sql, config.streamRunStuckAfterSeconds);
  await runDetector(deps, detectorName);
  await vacuumDetectorTables(sql);
  const times: number[] = [];
  for (let repeat = 0; repeat < detectorRepeats; repeat += 1) {
    await plantStuckRuns(sql, config.streamRunStuckAfterSeconds);
    const report = await runDetector(deps, detectorName);
    if (
      report.outcome !== 'completed' ||
      report.findings.created !== stuckRunsPlanted ||
      report.findings.seen !== seen
    ) {
      throw new Error(`${label}: a detector run did not do the work: ${JSON.stringify(report)}`);
    }
    times.push(report.durationMs);
  }
  await vacuumDetectorTables(sql);
  const before = await workDone(sql);
  const script = await pgbenchScript(
    `streams-detector-${label.replaceAll(/\W+/g, '-')}`,
    detectorScript(config, overdue),
  );
  const pgbenchMs = median(await pgbenchLatenciesMs(url, script, detectorRepeats));
  const after = await workDone(sql);
  const expected: Work = {
    runs: before.runs + stuckRunsPlanted * detectorRepeats,
    runFindings: before.runFindings + stuckRunsPlanted * detectorRepeats,
    overdueSeen: before.overdueSeen + Math.min(overdue, stuckFindingsMax) * detectorRepeats,
  };
  if (JSON.stringify(after) !== JSON.stringify(expected)) {
    throw new Error(`${label}: pgbench did ${JSON.stringify(after)}, expected ${JSON.stringify(expected)}`);
  }
  return { overdue, ms: median(times), pgbenchMs, seen };
}

export function detectorReport(rows: readonly [string, DetectorFigures][]): string {
  const config = settings();
  const lines = [
    `stuck_settlements detector (runDetector, median of ${detectorRepeats} runs, against the median of ${detectorRepeats} pgbench transactions; before each, ${stuckRunsPlanted} settlement runs left running past ${config.streamRunStuckAfterSeconds} s; overdue: due more than ${config.streamOverdueAfterSeconds} s ago, at most ${stuckFindingsMax} findings a run):`,
  ];
  for (const [label, figures] of rows) {
    lines.push(
      `  ${label.padEnd(14)} ${figures.ms.toFixed(2)} ms (${figures.overdue} overdue, ${figures.seen} findings seen); pgbench, its statements ${figures.pgbenchMs.toFixed(2)} ms; ratio ${(figures.ms / figures.pgbenchMs).toFixed(2)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
