import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type { Config } from '../platform/config.ts';
import type { Runtime } from '../platform/runtime.ts';
import { closeFindingByOperator } from '../reconciliation/close.ts';
import {
  type ChainAccess,
  type ReconciliationDeps,
  reconciliationSettings,
} from '../reconciliation/context.ts';
import { type FindingRow, selectFindings, selectOpenFindings } from '../reconciliation/data.ts';
import { detectors } from '../reconciliation/detectors.ts';
import { type DetectorName, detectorNames, findingKinds } from '../reconciliation/findings.ts';
import { type RunReport, runDetector } from '../reconciliation/runner.ts';
import { findStellar } from '../stellar/connect.ts';
import { loadWallet } from '../stellar/wallet.ts';
import { CliError, type Output, operatorName, print, withRuntime } from './context.ts';
import { table } from './table.ts';

/**
 * `settledesk reconcile run|findings`: the detectors the worker runs every minute, run now from
 * the database (and Stellar, for the detectors that read it), and what they have found. `run`
 * continues from each detector's checkpoint, or rebuilds from the beginning with `--full`; it
 * waits for a detector another process is running, up to a bound.
 */

const findingsLimitMax = 500;
/** How long `run` waits for a detector that a worker is running right now. */
const leaseWaitMs = 60_000;
const evidenceWidthMax = 100;

type RunLine = RunReport | { detector: DetectorName; outcome: 'skipped' | 'failed'; reason: string };

function detectorOf(text: string): DetectorName {
  const name = detectorNames.find((candidate) => candidate === text);
  if (!name) throw new CliError(`--detector must be one of ${detectorNames.join(', ')}`);
  return name;
}

function limitOf(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > findingsLimitMax) {
    throw new CliError(`--limit must be a whole number from 1 to ${findingsLimitMax}`);
  }
  return limit;
}

/** Where the CLI reaches Stellar: the configured network or the running sandbox, and the hot wallet. */
async function chainFor(config: Config): Promise<ChainAccess> {
  const endpoints = await findStellar(config);
  const wallet = await loadWallet(config);
  return { horizonUrls: endpoints.horizonUrls, hotWallet: wallet.hotWallet.publicKey() };
}

function progressBar(name: DetectorName): { update(done: number, total: number): void; stop(): void } {
  const bar = new SingleBar({
    format: `${name.padEnd(18)} [{bar}] {percentage}% {value}/{total}`,
    stream: process.stderr,
  });
  let started = false;
  return {
    update: (done, total) => {
      if (!started) bar.start(Math.max(total, 1), 0);
      started = true;
      bar.setTotal(Math.max(total, done, 1));
      bar.update(done);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

async function runAll(runtime: Runtime, names: readonly DetectorName[], full: boolean): Promise<RunLine[]> {
  const needsChain = names.some((name) => detectors[name].needsChain);
  const chain = needsChain ? await chainFor(runtime.config).catch((error: unknown) => error) : undefined;
  const deps: ReconciliationDeps = {
    sql: runtime.sql,
    logger: runtime.logger,
    settings: reconciliationSettings(runtime.config.reconciliation),
    chain: chain instanceof Error || chain === undefined ? undefined : (chain as ChainAccess),
  };
  const lines: RunLine[] = [];
  for (const name of names) {
    if (detectors[name].needsChain && deps.chain === undefined) {
      const reason = chain instanceof Error ? chain.message : 'no Stellar endpoints';
      lines.push({ detector: name, outcome: 'skipped', reason: `needs Stellar: ${reason}` });
      continue;
    }
    const bar = progressBar(name);
    try {
      lines.push(await runDetector(deps, name, { full, onProgress: bar.update, leaseWaitMs }));
    } catch (error) {
      lines.push({
        detector: name,
        outcome: 'failed',
        reason: error instanceof Error ? error.message : String(error),
      });
    } finally {
      bar.stop();
    }
  }
  return lines;
}

function describeRuns(lines: readonly RunLine[]): string {
  return table(
    ['detector', 'outcome', 'scanned', 'new', 'seen', 'resolved', 'ms', 'note'],
    lines.map((line) =>
      'findings' in line
        ? [
            line.detector,
            line.outcome,
            String(line.scanned),
            String(line.findings.created),
            String(line.findings.seen),
            String(line.findings.resolved),
            line.durationMs.toFixed(0),
            line.outcome === 'busy'
              ? 'another process kept it busy'
              : line.outcome === 'behind'
                ? 'stopped at its per-run bound: run again'
                : '',
          ]
        : [line.detector, line.outcome, '', '', '', '', '', line.reason],
    ),
  );
}

function describeFindings(rows: readonly FindingRow[]): string {
  return table(
    ['kind', 'subject', 'first seen', 'last seen', 'resolved', 'seen', 'evidence'],
    rows.map((row) => {
      const evidence = JSON.stringify(row.evidence);
      return [
        row.kind,
        row.subject,
        row.firstSeenAt.toISOString(),
        row.lastSeenAt.toISOString(),
        row.resolvedAt?.toISOString() ?? 'open',
        String(row.occurrences),
        evidence.length > evidenceWidthMax ? `${evidence.slice(0, evidenceWidthMax - 1)}…` : evidence,
      ];
    }),
  );
}

export function registerReconcileCommands(program: Command, output: () => Output): void {
  const reconcile = program
    .command('reconcile')
    .description(
      'reconciliation: ledger, accounts, settlements, chain and deposits checked against each other',
    );
  reconcile
    .command('run')
    .description('run the detectors now, from their checkpoints (or from the beginning with --full)')
    .option('--detector <name>', `only this one: ${detectorNames.join(', ')}`)
    .option('--full', 'rebuild from the beginning of history instead of continuing')
    .action(async (options: { detector?: string; full?: boolean }) => {
      const names = options.detector === undefined ? detectorNames : [detectorOf(options.detector)];
      const lines = await withRuntime({ migrate: false }, (runtime) =>
        runAll(runtime, names, options.full ?? false),
      );
      print(output(), lines, () => describeRuns(lines));
      // Behind is not a failure: the next run continues where this one stopped.
      if (lines.some((line) => line.outcome !== 'completed' && line.outcome !== 'behind'))
        process.exitCode = 1;
    });
  reconcile
    .command('findings')
    .description('what the detectors found, newest first')
    .option('--kind <kind>', `only this kind: ${findingKinds.join(', ')}`)
    .option('--open', 'only findings still open')
    .option('--limit <n>', `at most this many (≤ ${findingsLimitMax})`, '50')
    .action(async (options: { kind?: string; open?: boolean; limit: string }) => {
      if (options.kind !== undefined && !findingKinds.some((kind) => kind === options.kind)) {
        throw new CliError(`--kind must be one of ${findingKinds.join(', ')}`);
      }
      const filter = { kind: options.kind, limit: limitOf(options.limit) };
      const rows = await withRuntime({ migrate: false }, (runtime) =>
        options.open ? selectOpenFindings(runtime.sql, filter) : selectFindings(runtime.sql, filter),
      );
      print(output(), rows, () => (rows.length === 0 ? 'no findings' : describeFindings(rows)));
    });
  reconcile
    .command('close <id>')
    .description('close an open finding once it has been dealt with (audited; moves no money)')
    .requiredOption('--reason <text>', 'what was done about it')
    .option('--as <name>', 'who closes it (default SETTLEDESK_OPERATOR or the OS user)')
    .action(async (id: string, options: { reason: string; as?: string }) => {
      const actor = operatorName(options.as);
      const row = await withRuntime({ migrate: false }, (runtime) =>
        closeFindingByOperator(runtime.sql, { id, actor, reason: options.reason }),
      );
      print(output(), row, () => `closed ${row.kind} finding ${row.id} (${row.subject})`);
    });
}
