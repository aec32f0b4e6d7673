import { describe, expect, it } from 'vitest';
// The two entry points between them load every domain, and so every metric the service declares.
import '../../src/server.ts';
import '../../src/cli/main.ts';
import { prometheusBuiltinNames, promqlMetricNames, seriesNames } from '../../src/ops/promql-names.ts';
import { registry } from '../../src/platform/metrics.ts';
import { type Query, readQueries } from '../support/promtool.ts';

/** Series names the service exports: the registry after every domain is loaded, and Prometheus' own. */
async function exportedNames(): Promise<Set<string>> {
  const metrics = await registry.getMetricsAsJSON();
  return new Set([
    ...metrics.flatMap((metric) => seriesNames(metric.name, String(metric.type))),
    ...prometheusBuiltinNames,
  ]);
}

/** Each unknown name with every place that uses it, so one run reports everything missing. */
async function unknownNames(queries: readonly Query[]): Promise<Record<string, string[]>> {
  const exported = await exportedNames();
  const unknown: Record<string, string[]> = {};
  for (const query of queries) {
    for (const name of promqlMetricNames(query.expr)) {
      if (exported.has(name)) continue;
      unknown[name] = [...(unknown[name] ?? []), query.where];
    }
  }
  return unknown;
}

describe('metric names in alerts and dashboards', () => {
  it('reports a name the service does not export, with where it is used', async () => {
    const unknown = await unknownNames([
      {
        where: 'planted',
        expr: 'sum(rate(settledesk_made_up_total[5m])) / sum(rate(http_request_duration_seconds_count[5m]))',
      },
      { where: 'planted suffix', expr: 'worker_runs_total_bucket + payouts_waiting_for_network_count' },
    ]);
    expect(unknown).toEqual({
      settledesk_made_up_total: ['planted'],
      worker_runs_total_bucket: ['planted suffix'],
      payouts_waiting_for_network_count: ['planted suffix'],
    });
  });

  it('reads expressions from every alert and every dashboard panel', async () => {
    const queries = await readQueries();
    expect(queries.filter((query) => query.where.startsWith('ops/prometheus/')).length).toBeGreaterThan(20);
    expect(new Set(queries.map((query) => query.where.split(' ')[0])).size).toBe(6);
    expect(queries.filter((query) => promqlMetricNames(query.expr).length === 0)).toEqual([]);
  });

  it('name only metrics that the service exports', async () => {
    expect(await unknownNames(await readQueries())).toEqual({});
  });
});
