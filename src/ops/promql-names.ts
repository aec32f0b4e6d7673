/**
 * Metric names: which ones settledesk exports, and which ones a PromQL expression or a document
 * names. Shared by the checks that keep alerts, dashboards and runbooks pointing at real series.
 */

/** Series Prometheus itself makes for every scrape and every alerting rule. */
export const prometheusBuiltinNames: ReadonlySet<string> = new Set([
  'up',
  'ALERTS',
  'ALERTS_FOR_STATE',
  'scrape_duration_seconds',
  'scrape_samples_scraped',
  'scrape_samples_post_metric_relabeling',
  'scrape_series_added',
]);

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

/** The series names one metric exposes: a histogram is queried as `_bucket`, `_sum` and `_count`. */
export function seriesNames(name: string, type: MetricType | string): string[] {
  if (type === 'histogram') return [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
  if (type === 'summary') return [name, `${name}_sum`, `${name}_count`];
  return [name];
}

const declarationPattern =
  /new\s+(Counter|Gauge|Histogram|Summary)\s*(?:<[^>]*>)?\s*\(\s*\{\s*name:\s*['"]([a-zA-Z_:][a-zA-Z0-9_:]*)['"]/g;

/** Series names declared in TypeScript source with prom-client's `new Counter({ name: '…' })` and kin. */
export function declaredMetricNames(sources: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const source of sources) {
    for (const match of source.matchAll(declarationPattern)) {
      for (const name of seriesNames(match[2]!, match[1]!.toLowerCase())) names.add(name);
    }
  }
  return names;
}

/** Names of recording rules (`record: name`) in Prometheus rule files. */
export function recordedMetricNames(ruleFiles: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const text of ruleFiles) {
    for (const match of text.matchAll(/^\s*-?\s*record:\s*['"]?([a-zA-Z_:][a-zA-Z0-9_:]*)/gm))
      names.add(match[1]!);
  }
  return names;
}

const promqlKeywords = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'atan2',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'start',
  'end',
]);

/**
 * The metric names a PromQL expression selects. Comments, strings, Grafana variables (`$instance`,
 * `${job}`), label matchers, ranges and subqueries, label lists (`by (…)`, `on (…)`…), offsets,
 * numbers, keywords and function or aggregation names are not metric names; what is left of the
 * identifiers is.
 */
export function promqlMetricNames(expression: string): string[] {
  const stripped = expression
    .replace(/#.*$/gm, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$(?:\{[^}]*\}|\w+)/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/\boffset\s+-?[0-9a-z]+/gi, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?/g)) {
    const name = match[1]!;
    if (match[2] !== undefined || promqlKeywords.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

const metricSuffix = /_(?:total|seconds|bytes|bucket|count|sum|info|ratio)$/;

/**
 * Whether an inline code span in prose names a metric: a lower-case snake_case name with label
 * names (`payouts_stuck{state}`) or a Prometheus unit suffix (`_total`, `_seconds`…). Other
 * snake_case spans in the docs are states, tables and result codes.
 */
export function metricInCodeSpan(span: string): string | undefined {
  const match = /^([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(\{[^}]*\})?(\[[^\]]*\])?$/.exec(span.trim());
  if (!match) return undefined;
  const name = match[1]!;
  return match[2] !== undefined || metricSuffix.test(name) ? name : undefined;
}
