import { describe, expect, it } from 'vitest';
import {
  declaredMetricNames,
  metricInCodeSpan,
  promqlMetricNames,
  recordedMetricNames,
} from './promql-names.ts';

describe('promqlMetricNames', () => {
  it('finds the selected metrics, not functions, labels, strings, ranges, offsets or keywords', () => {
    const expression = `
      # the share of failed attempts
      sum by (outcome) (increase(settlement_attempts_total{outcome=~"failed|expired"}[30m]))
        / ignoring (outcome) group_left sum(rate(settlement_attempts_total[5m] offset 1h))
      > on (instance) BOOL clamp_min(payouts_stuck{state="submitted"}, 1e3)
      unless label_replace(up{job="settledesk"}, "worker", "reconcile_$1", "detector", "(.+)")
      and histogram_quantile(0.95, sum without (path) (rate(http_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`;
    expect(promqlMetricNames(expression).sort()).toEqual([
      'http_request_duration_seconds_bucket',
      'payouts_stuck',
      'settlement_attempts_total',
      'up',
    ]);
  });

  it('finds the names in an expression and nothing else', () => {
    expect(
      promqlMetricNames(
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

  it('keeps recording-rule names with colons', () => {
    expect(promqlMetricNames('job:payouts_stuck:max > 0')).toEqual(['job:payouts_stuck:max']);
  });
});

describe('declaredMetricNames and recordedMetricNames', () => {
  it('read prom-client declarations, with the series a histogram exposes', () => {
    const source = `new Counter({ name: 'a_total', help: 'x' }); new Histogram<'path'>({\n  name: 'b_seconds',`;
    expect([...declaredMetricNames([source])].sort()).toEqual([
      'a_total',
      'b_seconds',
      'b_seconds_bucket',
      'b_seconds_count',
      'b_seconds_sum',
    ]);
  });

  it('read recording rules', () => {
    expect([...recordedMetricNames(['groups:\n  - rules:\n      - record: job:x:rate5m\n'])]).toEqual([
      'job:x:rate5m',
    ]);
  });
});

describe('metricInCodeSpan', () => {
  it('takes snake_case names with labels or a unit suffix, and leaves states and tables alone', () => {
    expect(metricInCodeSpan('payouts_stuck{state}')).toBe('payouts_stuck');
    expect(metricInCodeSpan('worker_runs_total')).toBe('worker_runs_total');
    expect(metricInCodeSpan('manual_review')).toBeUndefined();
    expect(metricInCodeSpan('payout_clearing')).toBeUndefined();
    expect(metricInCodeSpan('TOKEN_TTL_SECONDS')).toBeUndefined();
  });
});
