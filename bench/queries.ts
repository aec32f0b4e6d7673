import { connect } from '../src/platform/db/connect.ts';
import { observeSql } from '../src/platform/db/observe.ts';
import type { Sql } from '../src/platform/db/types.ts';
import { createLogger } from '../src/platform/logging.ts';
import { benchDatabase } from './support.ts';

/**
 * What timing every query costs (`observeSql`, src/platform/db/observe.ts): `select 1` through a
 * plain postgres.js pool and through the same kind of pool observed, in alternating rounds so both
 * see the same machine. `select 1` on a local server is the cheapest query there is, so the
 * difference per query is the overhead at its largest share; the service's queries take longer.
 */

const poolMax = 4;
const concurrency = 16;
const queriesPerRound = 20_000;
const roundsEach = 5;
const logger = createLogger('silent');

type Round = { wallMs: number; cpuMs: number };

/**
 * One round of `queriesPerRound` queries from `concurrency` callers: wall time, and this process's
 * CPU time (user and system), which other load on the machine disturbs less.
 */
async function round(sql: Sql): Promise<Round> {
  let sent = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < queriesPerRound) {
        sent += 1;
        await sql`select 1`;
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - started, cpuMs: (used.user + used.system) / 1_000 };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export async function benchQueries(): Promise<void> {
  const db = await benchDatabase();
  const plain = connect({ url: db.url, poolMax, logger });
  const observed = observeSql(connect({ url: db.url, poolMax, logger }), 'main', poolMax);
  try {
    await round(plain);
    await round(observed.sql);
    const plainRounds: Round[] = [];
    const observedRounds: Round[] = [];
    for (let index = 0; index < roundsEach; index += 1) {
      plainRounds.push(await round(plain));
      observedRounds.push(await round(observed.sql));
    }
    const perQueryUs = (rounds: readonly Round[], pick: (one: Round) => number) =>
      (median(rounds.map(pick)) * 1_000) / queriesPerRound;
    const lines = [
      `select 1, ${concurrency} callers, pool of ${poolMax}, median of ${roundsEach} rounds of ${queriesPerRound}:`,
    ];
    for (const [what, pick] of [
      ['wall', (one: Round) => one.wallMs],
      ['cpu', (one: Round) => one.cpuMs],
    ] as const) {
      const plainUs = perQueryUs(plainRounds, pick);
      const observedUs = perQueryUs(observedRounds, pick);
      lines.push(
        `  ${what}: plain ${plainUs.toFixed(2)} µs, observed ${observedUs.toFixed(2)} µs per query; ` +
          `overhead ${(observedUs - plainUs).toFixed(2)} µs, observed / plain ${(observedUs / plainUs).toFixed(3)}`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    observed.unregister();
    await Promise.all([plain.end(), observed.sql.end()]);
    await db.close();
  }
}
