/**
 * `npm run bench -- NAME…`: runs the named benchmarks (all when none is named). Each benchmark
 * prints absolute figures, ratios against a reference measured in the same run, and the machine.
 */
import { cpus, totalmem } from 'node:os';
import { benchEscrow } from './escrow.ts';
import { benchPayouts } from './payouts.ts';
import { benchQueries } from './queries.ts';
import { benchStreams } from './streams.ts';
import { benchTransfers } from './transfers.ts';
import { benchTriage } from './triage.ts';

type Benchmark = { description: string; run: () => Promise<void> };

const benchmarks: Readonly<Record<string, Benchmark>> = {
  transfers: {
    description: 'transfers/s and latency of the HTTP API against pgbench running the same SQL',
    run: benchTransfers,
  },
  payouts: {
    description: 'sandbox ledger capacity used by the settlement engine while a backlog of payouts exists',
    run: benchPayouts,
  },
  queries: {
    description: 'what timing every query (db_query_duration_seconds) costs: select 1 plain against observed',
    run: benchQueries,
  },
  escrow: {
    description:
      'the escrow detector incremental run at 100k vs 1M escrow entries, against pgbench on its SQL and a full scan',
    run: benchEscrow,
  },
  streams: {
    description:
      'one settlement run over 10,000 due streams against plain SQL writing the same rows; the settlement-lag and stuck_settlements detectors against pgbench on their SQL',
    run: benchStreams,
  },
  triage: {
    description:
      'triage summary p99 on 1M entries and 100k payouts; detector incremental runs at 100k vs 1M entries',
    run: benchTriage,
  },
};

export function machineSummary(): string {
  const cores = cpus();
  return `${cores.length} × ${cores[0]?.model ?? 'unknown cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
}

async function main(names: readonly string[]): Promise<number> {
  const available = Object.keys(benchmarks);
  const selected = names.length > 0 ? names : available;
  const unknown = selected.filter((name) => !(name in benchmarks));
  if (unknown.length > 0 || available.length === 0) {
    const list = available.length > 0 ? available.join(', ') : 'none yet';
    process.stderr.write(
      `unknown benchmark(s): ${unknown.join(', ') || '(none named)'}; available: ${list}\n`,
    );
    return unknown.length > 0 ? 2 : 0;
  }
  process.stdout.write(`machine: ${machineSummary()}\n`);
  for (const name of selected) {
    const benchmark = benchmarks[name];
    if (!benchmark) continue;
    process.stdout.write(`\n== ${name}: ${benchmark.description}\n`);
    await benchmark.run();
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
