import { Gauge } from 'prom-client';
import { databaseFigures, registry } from '../platform/metrics.ts';
import { countOverdueActionItems } from './postmortem-data.ts';

/** A scrape inside this window reuses the last count: at most one count per window per process. */
export const overdueCacheMs = 5_000;

/**
 * Counted from the database when scraped (`databaseFigures`), so every API process reports the
 * same figure and a restart does not reset it. One count over the partial index of open items per
 * `overdueCacheMs` per process.
 */
const overdueFigures = databaseFigures(countOverdueActionItems, { overdue: 0 }, overdueCacheMs);

/** Where the gauge counts from; set by the routes of this process. */
export const countOverdueFrom = overdueFigures.from;

export const incidentActionItemsOverdue = new Gauge({
  name: 'incident_action_items_overdue',
  help: 'Open incident action items whose due day (UTC) has passed, counted from the database.',
  registers: [registry],
  async collect() {
    this.set((await overdueFigures.current()).overdue);
  },
});
