import { Counter, Gauge } from 'prom-client';
import { databaseFigures, registry } from '../platform/metrics.ts';
import { selectOldestRunningRunAge, selectSettlementLag } from './data.ts';
import { runOutcomes } from './states.ts';

/**
 * `result` is a run's outcome (succeeded, partial, failed, or abandoned when the stuck_settlements
 * detector closed it), so the series stay bounded.
 */
export const streamSettlementRuns = new Counter({
  name: 'stream_settlement_runs_total',
  help: 'Stream settlement runs by result: succeeded, partial (a stream was refused and stays due), failed, or abandoned (still running past STREAM_RUN_STUCK_AFTER_SECONDS, closed by the stuck_settlements detector).',
  labelNames: ['result'] as const,
  registers: [registry],
});
for (const result of Object.keys(runOutcomes)) streamSettlementRuns.inc({ result }, 0);

/**
 * The lag is read from the database when scraped (`databaseFigures`): the runs may happen in a
 * process that serves no metrics, and a run that never comes is exactly what it must show.
 */
export const settlementLagCacheMs = 5_000;
const lagFigures = databaseFigures(selectSettlementLag, 0, settlementLagCacheMs);
const runningFigures = databaseFigures(selectOldestRunningRunAge, 0, settlementLagCacheMs);

/** Where the lag and running-run gauges read from; set by the routes and tasks of this process. */
export function settlementLagFrom(sql: Parameters<typeof lagFigures.from>[0]): void {
  lagFigures.from(sql);
  runningFigures.from(sql);
}

export const streamSettlementLag = new Gauge({
  name: 'stream_settlement_lag_seconds',
  help: 'Seconds since the oldest active stream became due for settlement and was not settled, 0 when none is (from the database).',
  registers: [registry],
  async collect() {
    this.set(await lagFigures.current());
  },
});

export const streamSettlementRunRunning = new Gauge({
  name: 'stream_settlement_run_running_seconds',
  help: 'Seconds since the oldest stream settlement run still running started, 0 when none is (from the database): a crashed or hung run grows it until the stuck_settlements detector abandons it.',
  registers: [registry],
  async collect() {
    this.set(await runningFigures.current());
  },
});
