import { postJournal } from '../src/ledger/service.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createLogger } from '../src/platform/logging.ts';
import { reconciliationSettings } from '../src/reconciliation/context.ts';
import type { DetectorName } from '../src/reconciliation/findings.ts';
import { runDetector } from '../src/reconciliation/runner.ts';
import type { BenchDatabase } from './support.ts';

/**
 * The database-only detectors' incremental run after new work arrives: each detector first
 * catches up on what was seeded (not timed), then 1,000 entries are posted through the ledger's
 * own path and one incremental run of each detector is timed. Run at two history sizes, the
 * figures should be about equal: cost follows new data, not history. The detectors that read
 * Stellar (outgoing_payments, chain_balance, deposits) are left out: their cost is the Horizon pages
 * they fetch since their cursor, which history does not change.
 */

const timedDetectors: readonly DetectorName[] = [
  'ledger_balance',
  'account_balances',
  'stuck_settlements',
  'escrow',
];
const newEntriesJournals = 500;
const repeats = 3;

async function postNewEntries(db: BenchDatabase): Promise<void> {
  const accounts = await db.sql<{ id: string }[]>`
    select id from accounts where type = 'customer' order by id limit ${newEntriesJournals * 2}::int`;
  const [fees] = await db.sql<
    { id: string }[]
  >`select id from accounts where type = 'fees' and asset = 'XLM'`;
  for (let index = 0; index < newEntriesJournals; index += 1) {
    const accountId = accounts[index % accounts.length]?.id ?? '';
    await db.sql.begin((tx) =>
      postJournal(tx, {
        kind: 'bench_new',
        entries: [
          { accountId: fees?.id ?? '', amountMinor: -7n },
          { accountId, amountMinor: 7n },
        ],
      }),
    );
  }
}

/** Median of `repeats` incremental runs per detector, in ms, each after 1,000 new entries. */
export async function timeIncrementalRuns(db: BenchDatabase): Promise<Record<string, number>> {
  const deps = {
    sql: db.sql,
    logger: createLogger('silent'),
    settings: reconciliationSettings(loadConfig({}).reconciliation),
  };
  for (const name of timedDetectors) {
    let report = await runDetector(deps, name);
    while (report.outcome === 'behind') report = await runDetector(deps, name);
  }
  const samples = new Map<string, number[]>(timedDetectors.map((name) => [name, []]));
  for (let round = 0; round < repeats; round += 1) {
    await postNewEntries(db);
    for (const name of timedDetectors) {
      const report = await runDetector(deps, name);
      samples.get(name)?.push(report.durationMs);
    }
  }
  const medians: Record<string, number> = {};
  for (const [name, values] of samples) {
    const sorted = [...values].sort((a, b) => a - b);
    medians[name] = sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  }
  return medians;
}
