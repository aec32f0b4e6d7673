import { Counter, Gauge } from 'prom-client';
import { databaseFigures, registry } from '../platform/metrics.ts';
import { selectSettlementLag } from './data.ts';

/** `result` is a run's outcome (succeeded, partial, failed), so the series stay bounded. */
export const streamSettlementRuns = new Counter({
  name: 'stream_settlement_runs_total',
  help: 'Stream settlement runs by result: succeeded, partial (a stream was refused and stays due) or failed.',
  labelNames: ['result'] as const,
  registers: [registry],
});
for (const result of ['succeeded', 'partial', 'failed'] as const) streamSettlementRuns.inc({ result }, 0);

/**
 * The lag is read from the database when scraped (`databaseFigures`): the runs may happen in a
 * process that serves no metrics, and a run that never comes is exactly what it must show.
 */
export const settlementLagCacheMs = 5_000;
const lagFigures = databaseFigures(selectSettlementLag, 0, settlementLagCacheMs);

/** Where the lag gauge reads from; set by the routes and tasks of this process. */
export const settlementLagFrom = lagFigures.from;

export const streamSettlementLag = new Gauge({
  name: 'stream_settlement_lag_seconds',
  help: 'Seconds since the oldest active stream became due for settlement and was not settled, 0 when none is (from the database).',
  registers: [registry],
  async collect() {
    this.set(await lagFigures.current());
  },
});
