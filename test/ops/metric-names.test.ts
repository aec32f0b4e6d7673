import { describe, expect, it } from 'vitest';
// The two entry points between them load every domain, and so every metric the service declares.
import '../../src/server.ts';
import '../../src/cli/main.ts';
import { registry } from '../../src/platform/metrics.ts';
import { type Query, readQueries } from '../support/promtool.ts';

/** Series Prometheus makes itself rather than scraping them from the service. */
const synthesized = ['up'];
const histogramSuffixes = ['_bucket', '_sum', '_count'];
const keywords = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'atan2',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression reads. What is not a name goes first: strings (label
 * values, label_replace arguments), Grafana variables, label matchers, ranges and subqueries, and
 * the label lists of by/without/on/ignoring/group_*; then numbers and durations, function and
 * aggregation names (an identifier followed by a parenthesis) and keywords are skipped.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$(?:\{[^}]*\}|\w+)/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  const names = new Set<string>();
  for (const token of bare.matchAll(/(\d[\w.]*(?:[eE][+-]?\d+)?)|([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const [, number, identifier, call] = token;
    if (number !== undefined || identifier === undefined || call !== undefined) continue;
    if (keywords.has(identifier.toLowerCase())) continue;
    names.add(identifier);
  }
  return [...names];
}

/** Names the service exports: the registry after every domain is loaded, with histogram series. */
async function exportedNames(): Promise<{ plain: Set<string>; histograms: Set<string> }> {
  const metrics = await registry.getMetricsAsJSON();
  const plain = new Set([...metrics.map((metric) => metric.name), ...synthesized]);
  const histograms = new Set(
    metrics.filter((metric) => String(metric.type) === 'histogram').map((metric) => metric.name),
  );
  return { plain, histograms };
}

function isExported(name: string, exported: { plain: Set<string>; histograms: Set<string> }): boolean {
  if (exported.plain.has(name)) return true;
  const suffix = histogramSuffixes.find((candidate) => name.endsWith(candidate));
  return suffix !== undefined && exported.histograms.has(name.slice(0, -suffix.length));
}

/** Each unknown name with every place that uses it, so one run reports everything missing. */
async function unknownNames(queries: readonly Query[]): Promise<Record<string, string[]>> {
  const exported = await exportedNames();
  const unknown: Record<string, string[]> = {};
  for (const query of queries) {
    for (const name of metricNames(query.expr)) {
      if (isExported(name, exported)) continue;
      unknown[name] = [...(unknown[name] ?? []), query.where];
    }
  }
  return unknown;
}

describe('metric names in alerts and dashboards', () => {
  it('finds the names in an expression and nothing else', () => {
    expect(
      metricNames(
        'sum by (le, path) (rate(http_request_duration_seconds_bucket{job="settledesk", path!~"/health/.*"}[$__rate_interval]))' +
          ' / ignoring(path) group_left sum without (instance) (up offset 5m) > bool 0.95 and on (worker)' +
          ' label_replace(time() - reconciliation_last_success_timestamp_seconds < 3600, "worker", "reconcile_$1", "detector", "(.+)")' +
          ' or vector(1e3) unless max_over_time(payouts_stuck[1h:5m])',
      ).sort(),
    ).toEqual([
      'http_request_duration_seconds_bucket',
      'payouts_stuck',
      'reconciliation_last_success_timestamp_seconds',
      'up',
    ]);
  });

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
    expect(new Set(queries.map((query) => query.where.split(' ')[0])).size).toBe(5);
    expect(queries.filter((query) => metricNames(query.expr).length === 0)).toEqual([]);
  });

  it('name only metrics that the service exports', async () => {
    expect(await unknownNames(await readQueries())).toEqual({});
  });
});
