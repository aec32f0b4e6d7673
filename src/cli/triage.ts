import type { Command } from 'commander';
import type { SnapshotView } from '../incidents/service.ts';
import { parseOlderThan } from '../ops/routes.ts';
import type { StellarStatus } from '../ops/stellar-status.ts';
import type {
  DependencyReport,
  EscrowReport,
  FindingView,
  LedgerReport,
  LoopsReport,
  StuckReport,
  Summary,
  Timeline,
} from '../ops/triage.ts';
import { escrowHoldsListedMax, Triage } from '../ops/triage.ts';
import { workersCheck } from '../platform/heartbeat.ts';
import { isUuid } from '../platform/ids.ts';
import type { Runtime } from '../platform/runtime.ts';
import { findStellar } from '../stellar/connect.ts';
import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { table } from './table.ts';

/**
 * `settledesk triage …`: the same library as /internal/incident/, straight from the database, so
 * it answers with the API down. Read-only except `snapshot`. With `--check`, a command exits 1
 * when what it looked at needs attention (for runbook cells and scripts).
 */

async function stellarOrUndefined(runtime: Runtime): Promise<StellarEndpoints | undefined> {
  try {
    return await findStellar(runtime.config);
  } catch {
    // No sandbox is running (it runs inside `serve`) and no URL is configured: Stellar is unknown.
    return undefined;
  }
}

async function withTriage<T>(work: (triage: Triage) => Promise<T>): Promise<T> {
  return withRuntime({ migrate: false }, async (runtime) => {
    // The checks `serve` reports, less those only a serving process has (its Stellar breakers).
    runtime.health.register(workersCheck(runtime.sql));
    const stellar = await stellarOrUndefined(runtime);
    return work(new Triage({ sql: runtime.sql, stellar, health: runtime.health }));
  });
}

function failIf(check: boolean | undefined, attention: boolean, message: string): void {
  if (check && attention) throw new CliError(message);
}

function findingsTable(findings: readonly FindingView[]): string {
  return table(
    ['kind', 'subject', 'first seen', 'last seen', 'seen', 'evidence'],
    findings.map((finding) => [
      finding.kind,
      finding.subject,
      finding.firstSeenAt,
      finding.lastSeenAt,
      String(finding.occurrences),
      JSON.stringify(finding.evidence),
    ]),
  );
}

function stellarText(status: StellarStatus | null): string {
  if (status === null) return 'stellar: unknown (no network configured and no sandbox running)';
  return table(
    [
      'path',
      'reachable',
      'latest ledger',
      'age s',
      'ingestion lag',
      'base fee',
      'p90 fee',
      'capacity',
      'breaker',
      'error',
    ],
    status.paths.map((path) => [
      path.path,
      path.reachable ? 'yes' : 'NO',
      String(path.latestLedger ?? '-'),
      String(path.latestLedgerAgeSeconds ?? '-'),
      String(path.ingestionLagLedgers ?? '-'),
      path.fees?.baseFeeStroops ?? '-',
      path.fees?.p90FeeStroops ?? '-',
      path.fees?.capacityUsage ?? '-',
      path.breaker,
      path.error ?? '',
    ]),
  );
}

function dependenciesText(report: DependencyReport | null): string {
  if (report === null) return 'dependencies: unknown';
  return table(
    ['dependency', 'critical', 'status', 'latency ms', 'detail'],
    Object.values(report.checks).map((check) => [
      check.name,
      check.critical ? 'yes' : 'no',
      check.status,
      String(check.latencyMs),
      check.detail ?? '',
    ]),
  );
}

function loopsText(report: LoopsReport): string {
  const silent = report.silentProcesses.map(
    (process) => `stopped reporting: ${process.processId} (silent for ${process.silentSeconds} s)`,
  );
  return [
    table(
      ['worker', 'stale', 'last success s ago', 'interval s', 'stale after s', 'processes'],
      report.loops.map((loop) => [
        loop.worker,
        loop.stale ? 'YES' : 'no',
        String(loop.lastSuccessAgeSeconds),
        String(loop.intervalSeconds),
        String(loop.staleAfterSeconds),
        `${loop.processCount}: ${loop.processes.join(', ')}`,
      ]),
    ),
    ...silent,
  ].join('\n');
}

function summaryText(summary: Summary): string {
  return [
    `status: ${summary.status.toUpperCase()} at ${summary.generatedAt}`,
    ...summary.attention.map((line) => `  ! ${line}`),
    ...Object.entries(summary.parts).map(
      ([name, part]) => `${name}: ${part.status.toUpperCase()} (${part.detail})`,
    ),
    `controls: payments ${summary.controls.paymentsMode}, payouts ${summary.controls.payoutsFrozen ? 'FROZEN' : 'running'} (by ${summary.controls.updatedBy}: ${summary.controls.reason})`,
    `payouts: ${summary.payouts.open.map((row) => `${row.count} ${row.state} (oldest ${row.oldestAgeSeconds}s)`).join(', ') || 'none open'}; ${summary.payouts.stuck.count} stuck over ${summary.payouts.stuck.olderThanSeconds}s; ${summary.payouts.manualReview} in manual review`,
    `streams: ${summary.streams.runsRunning} settlement runs and ${summary.streams.overdue} due streams stuck over ${summary.streams.olderThanSeconds}s`,
    `ledger: ${summary.ledger.imbalances.length === 0 ? 'balances sum to zero' : summary.ledger.imbalances.map((row) => `${row.asset} sums to ${row.sum}`).join(', ')}; ${summary.ledger.openFindings} open ledger findings`,
    `findings: ${summary.findings.map((row) => `${row.count} ${row.kind}`).join(', ') || 'none open'}`,
    `deposits: ${summary.deposits.webhookDeadLetters} webhooks in the DLQ; watcher at ledger ${summary.deposits.watcher.lastLedger ?? '-'} (${summary.deposits.watcher.lastLedgerAgeSeconds ?? '-'}s old)`,
    `approvals pending: ${summary.approvalsPending}`,
    stellarText(summary.stellar),
    dependenciesText(summary.dependencies),
  ].join('\n');
}

function stuckText(report: StuckReport): string {
  return [
    `${report.count} payouts not final after ${report.olderThanSeconds}s`,
    table(
      ['id', 'state', 'age s', 'since change s', 'amount', 'attempts', 'live hash', 'reason'],
      report.payouts.map((row) => [
        row.id,
        row.state,
        String(row.ageSeconds),
        String(row.sinceLastChangeSeconds),
        `${row.amount} ${row.asset}`,
        String(row.attempts),
        row.liveHash ?? '-',
        row.stateReason,
      ]),
    ),
    `stream settlement runs still running after ${report.olderThanSeconds}s, or abandoned with an open stream_run_stuck finding: ${report.streams.runs.length}`,
    table(
      ['run', 'outcome', 'as of', 'started', 'running s', 'streams settled', 'payouts', 'not final'],
      report.streams.runs.map((run) => [
        run.id,
        run.outcome,
        run.asOf,
        run.startedAt,
        String(run.runningSeconds),
        String(run.streamsSettled),
        String(run.payouts),
        String(run.payoutsNotFinal),
      ]),
    ),
    `${report.streams.overdueCount} streams due and not settled after ${report.olderThanSeconds}s`,
    table(
      ['stream', 'due since', 'overdue s', 'settled', 'total', 'recipient'],
      report.streams.overdue.map((stream) => [
        stream.id,
        stream.nextSettlementAt,
        String(stream.overdueSeconds),
        stream.settled,
        `${stream.total} ${stream.asset}`,
        stream.recipient,
      ]),
    ),
  ].join('\n');
}

function ledgerText(report: LedgerReport): string {
  return [
    report.balanced ? 'ledger: balanced' : 'ledger: IMBALANCED',
    table(
      ['asset', 'sum of balances', 'balanced'],
      report.balanceSums.map((row) => [row.asset, row.sum, row.balanced ? 'yes' : 'NO']),
    ),
    findingsTable(report.findings),
  ].join('\n');
}

function escrowText(report: EscrowReport): string {
  return [
    report.leaking ? 'escrow: LEAKING' : 'escrow: balanced with open holds',
    table(
      ['asset', 'escrow balance', 'open holds', 'difference'],
      report.accounts.map((row) => [row.asset, row.balance, row.openHolds, row.difference]),
    ),
    ...report.accounts
      .filter((row) => row.holds.length > 0)
      .map((row) =>
        [
          `open holds of ${row.asset} (largest first, at most ${escrowHoldsListedMax}):`,
          table(
            ['hold', 'state', 'remaining', 'created'],
            row.holds.map((hold) => [hold.id, hold.state, hold.remaining, hold.createdAt]),
          ),
        ].join('\n'),
      ),
    findingsTable(report.findings),
  ].join('\n');
}

function timelineText(timeline: Timeline): string {
  const { payout } = timeline;
  return [
    `payout ${payout.id}: ${payout.state} (${payout.stateReason}); ${payout.amount} ${payout.asset} → ${payout.destination}`,
    'history:',
    table(
      ['at', 'from', 'to', 'actor', 'reason'],
      payout.history.map((entry) => [
        entry.at,
        entry.fromState ?? '-',
        entry.toState,
        entry.actor,
        entry.reason,
      ]),
    ),
    'attempts:',
    table(
      ['id', 'state', 'hash', 'channel', 'max time', 'max ledger', 'sent', 'outcome'],
      payout.attempts.map((attempt) => [
        attempt.id,
        attempt.state,
        attempt.hash,
        attempt.channel,
        attempt.maxTime,
        String(attempt.maxLedger),
        String(attempt.submissions),
        attempt.outcome ?? '',
      ]),
    ),
    'on chain:',
    table(
      ['hash', 'status', 'ledger', 'answered by', 'unanswered'],
      timeline.onChain.map((lookup) => [
        lookup.hash,
        lookup.status,
        String(lookup.ledger ?? '-'),
        lookup.path ?? '-',
        lookup.unanswered.map((miss) => `${miss.path}: ${miss.error}`).join('; '),
      ]),
    ),
    'journals:',
    table(
      ['journal', 'kind', 'at'],
      timeline.journals.map((row) => [row.journalId, row.kind, row.createdAt]),
    ),
    'audit:',
    table(
      ['id', 'at', 'actor', 'action', 'sealed'],
      timeline.audit.map((row) => [
        row.id,
        row.occurredAt,
        row.actor,
        row.action,
        row.sealed ? 'yes' : 'not yet',
      ]),
    ),
    'findings:',
    findingsTable(timeline.findings),
  ].join('\n');
}

export function registerTriageCommands(program: Command, output: () => Output): void {
  const triage = program
    .command('triage')
    .description('read-only incident triage, straight from the database (works with the API down)');
  triage
    .command('summary')
    .description(
      'everything on one page: controls, payouts, ledger, findings, deposits, Stellar, dependencies',
    )
    .option('--check', 'exit 1 unless the status is ok')
    .action(async (options: { check?: boolean }) => {
      const summary = await withTriage((library) => library.summary());
      print(output(), summary, () => summaryText(summary));
      failIf(options.check, summary.status !== 'ok', `needs attention: ${summary.attention.join('; ')}`);
    });
  triage
    .command('stuck')
    .alias('stuck-settlements')
    .description(
      'payouts not final after --older-than, oldest first; stream settlement runs still running past it (or abandoned, finding open) and streams due past it',
    )
    .option('--older-than <duration>', 'e.g. 90s, 30m, 2h, 1d', '30m')
    .option('--check', 'exit 1 when any payout, stream settlement run or stream is stuck')
    .action(async (options: { olderThan: string; check?: boolean }) => {
      const olderThanSeconds = parseOlderThanOption(options.olderThan);
      const report = await withTriage((library) => library.stuckSettlements(olderThanSeconds));
      print(output(), report, () => stuckText(report));
      const runs = report.streams.runs.length;
      failIf(
        options.check,
        report.count > 0 || runs > 0 || report.streams.overdueCount > 0,
        `${report.count} payouts, ${runs} stream settlement runs and ${report.streams.overdueCount} streams are stuck`,
      );
    });
  triage
    .command('double-payouts')
    .description('open double-payout and unknown-outgoing-payment findings')
    .option('--check', 'exit 1 when there is any')
    .action(async (options: { check?: boolean }) => {
      const report = await withTriage((library) => library.doublePayouts());
      print(output(), report, () => findingsTable(report.findings));
      failIf(
        options.check,
        report.findings.length > 0,
        `${report.findings.length} open double-payout findings`,
      );
    });
  triage
    .command('escrow-leaks')
    .description('the escrow account against the open holds')
    .option('--check', 'exit 1 when escrow leaks')
    .action(async (options: { check?: boolean }) => {
      const report = await withTriage((library) => library.escrowLeaks());
      print(output(), report, () => escrowText(report));
      failIf(options.check, report.leaking, 'escrow does not match the open holds');
    });
  triage
    .command('ledger')
    .description('per asset, whether the ledger sums to zero, and the open ledger findings')
    .option('--check', 'exit 1 when the ledger is not balanced')
    .action(async (options: { check?: boolean }) => {
      const report = await withTriage((library) => library.ledgerImbalance());
      print(output(), report, () => ledgerText(report));
      failIf(options.check, !report.balanced, 'the ledger is not balanced');
    });
  triage
    .command('stellar')
    .description('each Horizon and RPC path now: reachable, latest ledger and age, ingestion lag, fees')
    .option('--check', 'exit 1 when any path does not answer')
    .action(async (options: { check?: boolean }) => {
      const status = await withTriage((library) => library.stellar());
      print(output(), status, () => stellarText(status));
      const down =
        status === null ? ['all'] : status.paths.filter((path) => !path.reachable).map((path) => path.path);
      failIf(options.check, down.length > 0, `not answering: ${down.join(', ')}`);
    });
  triage
    .command('dependencies')
    .description('the readiness checks: PostgreSQL and the job workers (their heartbeats)')
    .action(async () => {
      const report = await withTriage((library) => library.dependencies());
      print(output(), report, () => dependenciesText(report));
    });
  triage
    .command('loops')
    .description(
      'every background loop any process reports: processes, last success age, interval, stale; silent processes',
    )
    .option('--check', 'exit 1 when any loop is stale')
    .action(async (options: { check?: boolean }) => {
      const report = await withTriage((library) => library.loops());
      print(output(), report, () => loopsText(report));
      const stale = report.loops.filter((loop) => loop.stale).map((loop) => loop.worker);
      failIf(options.check, stale.length > 0, `stale loops: ${stale.join(', ')}`);
    });
  triage
    .command('payout <id>')
    .description("one payout's full timeline: states, attempts, on-chain lookups, journals, audit, findings")
    .action(async (id: string) => {
      const timeline = await withTriage((library) => library.payoutTimeline(id));
      print(output(), timeline, () => timelineText(timeline));
    });
  triage
    .command('snapshot')
    .description('store everything above as one snapshot attached to an incident; moves no money')
    .option(
      '--incident <id-or-ref>',
      'the incident id (attaches the snapshot to it, with a timeline event) or a free-text reference',
    )
    .option('--as <name>', 'who takes it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (options: { incident?: string; as?: string }) => {
      if (options.incident !== undefined && !/^[A-Za-z0-9._:-]{1,100}$/.test(options.incident)) {
        throw new CliError('--incident must be 1-100 characters of [A-Za-z0-9._:-]');
      }
      const takenBy = operatorName(options.as);
      const snapshot = await withTriage((library) => library.snapshot(takenBy, options.incident ?? null));
      const attached = snapshot.incidentId ? `, attached to incident ${snapshot.incidentId}` : '';
      print(output(), snapshot, () => `snapshot ${snapshot.id} taken at ${snapshot.takenAt}${attached}`);
    });
  triage
    .command('show-snapshot <id>')
    .description('read a stored snapshot back (--json for all of it)')
    .action(async (id: string) => {
      if (!isUuid(id)) throw new CliError(`${id} is not a snapshot id (a lowercase uuid)`);
      const snapshot = await withTriage((library) => library.readSnapshot(id));
      print(output(), snapshot, () => snapshotText(snapshot));
    });
}

function snapshotText(snapshot: SnapshotView): string {
  const summary = snapshot.content.summary as Summary | undefined;
  const incident = snapshot.incidentId ?? snapshot.incidentRef ?? 'no incident';
  return [
    `snapshot ${snapshot.id} taken at ${snapshot.takenAt} by ${snapshot.takenBy} for ${incident}`,
    `status then: ${summary?.status.toUpperCase() ?? 'unknown'}`,
    ...(summary?.attention ?? []),
    '(--json shows every part as it was taken)',
  ].join('\n');
}

function parseOlderThanOption(text: string): number {
  try {
    return parseOlderThan(text);
  } catch (error) {
    throw new CliError(`--older-than: ${error instanceof Error ? error.message : String(error)}`);
  }
}
