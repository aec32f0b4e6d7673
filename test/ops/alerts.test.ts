import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runbookBaseDefault, runbookPathOf } from '../../src/ops/alert-rules.ts';
import { runCli } from '../support/process.ts';
import {
  type AlertRule,
  type AlertTestGroup,
  locatePromtool,
  opsDir,
  panelsOf,
  readAlertRules,
  readAlertTests,
  readDashboards,
  runPromtool,
} from '../support/promtool.ts';

/** Defined in ops/README.md; the incident severity each maps to is there too. */
const severities = ['page', 'critical', 'warning'];
/** The runbooks of docs/runbooks/ (PRODUCT.md §3); alerts link to their Indicators section. */
const runbooks = [
  'horizon-outage',
  'stellar-rpc-outage',
  'stuck-transaction-recovery',
  'stuck-settlement',
  'double-payout-or-escrow-leak',
  'disputed-release-attempt',
  'stuck-release',
  'ledger-imbalance',
  'db-failover',
  'database-health',
  'jwt-secret-rotation',
  'compromised-admin',
  'leaked-secret',
  'deposit-webhook-failures',
  'duplicate-deposit',
  'missing-deposit',
  'suspicious-payment-proof',
  'manual-review-backlog',
  'merchant-webhook-delivery',
  'provider-outage-and-migration',
  'deposit-watcher-stalled',
  'worker-stalled',
  'api-down',
  'high-latency',
  'dependency-compromise',
  'oncall',
];
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template.
const datasourceVariable = '${datasource}';
/**
 * Alerts link to their runbook's Indicators section; an alert about the work after an incident
 * (overdue action items) links to Post-incident actions, the section that says what to do.
 */
const runbookPath = /^docs\/runbooks\/([a-z0-9-]+)\.md#(?:indicators|post-incident-actions)$/;
/**
 * The incident process's own alerts (a late escalation step, an overdue update reminder) are not an
 * incident class: they link to their subsection of the on-call overview.
 */
const oncallAlertsPath = 'docs/runbooks/oncall.md#missed-escalation-steps-and-overdue-reminders';
/** Downloading and unpacking Debian's prometheus package (about 20 MB) on a machine without promtool. */
const promtoolInstallTimeoutMs = 300_000;

const prometheusDir = join(opsDir, 'prometheus');
let promtool = '';
let rules: AlertRule[] = [];

beforeAll(async () => {
  promtool = await locatePromtool();
  rules = await readAlertRules();
}, promtoolInstallTimeoutMs);

/** Prometheus durations as used in `for:` and `eval_time:` (`90s`, `15m`, `1h30m`). */
function durationMs(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== text) {
    throw new Error(`not a duration: ${text}`);
  }
  return parts.reduce((sum, part) => sum + Number(part[1]) * (units[part[2] ?? ''] ?? 0), 0);
}

type Coverage = { fires: boolean; quietBeforeFor: boolean; clean: boolean };

/**
 * What the unit tests show about one alert: a check where it fires; a quiet check in the same
 * group at most its `for:` earlier (so it demonstrably waited); and a group where it never fires.
 */
function coverageOf(rule: AlertRule, groups: readonly AlertTestGroup[]): Coverage {
  const forMs = durationMs(rule.for ?? '0m');
  const coverage: Coverage = { fires: false, quietBeforeFor: false, clean: false };
  for (const group of groups) {
    const checks = (group.alert_rule_test ?? []).filter((check) => check.alertname === rule.alert);
    if (checks.length === 0) continue;
    const firing = checks
      .filter((check) => (check.exp_alerts ?? []).length > 0)
      .map((c) => durationMs(c.eval_time));
    const quiet = checks
      .filter((check) => (check.exp_alerts ?? []).length === 0)
      .map((c) => durationMs(c.eval_time));
    if (firing.length === 0) coverage.clean = true;
    if (firing.length > 0) coverage.fires = true;
    const waited = firing.some((fireAt) =>
      quiet.some((quietAt) => quietAt < fireAt && (forMs === 0 || fireAt - quietAt <= forMs)),
    );
    if (waited) coverage.quietBeforeFor = true;
  }
  return coverage;
}

describe('ops/prometheus/alerts.yml', () => {
  it('passes promtool check rules', async () => {
    const result = await runPromtool(promtool, ['check', 'rules', 'alerts.yml'], prometheusDir);
    expect(result.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(result.code, result.output).toBe(0);
  });

  it('passes its unit tests in alerts.test.yml under promtool test rules', async () => {
    const result = await runPromtool(promtool, ['test', 'rules', 'alerts.test.yml'], prometheusDir);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS');
  });

  it('gives every alert a unique name, a severity, a summary, a description and an absolute runbook_url to docs/runbooks/', () => {
    expect(rules.length).toBeGreaterThan(0);
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const rule of rules) {
      if (seen.has(rule.alert)) problems.push(`${rule.alert}: defined twice`);
      seen.add(rule.alert);
      if (!severities.includes(rule.labels?.severity ?? '')) {
        problems.push(
          `${rule.alert}: severity ${rule.labels?.severity} is not one of ${severities.join(', ')}`,
        );
      }
      for (const annotation of ['summary', 'description']) {
        if ((rule.annotations?.[annotation] ?? '').trim() === '')
          problems.push(`${rule.alert}: no ${annotation}`);
      }
      const path = runbookPathOf(rule.annotations?.runbook_url ?? '') ?? '';
      const runbook = runbookPath.exec(path)?.[1];
      if (path !== oncallAlertsPath && (runbook === undefined || !runbooks.includes(runbook))) {
        problems.push(`${rule.alert}: runbook_url ${rule.annotations?.runbook_url} is not a known runbook`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('has unit tests for every alert: one where it fires, one quiet until its for: has passed, and a clean one', async () => {
    const groups = await readAlertTests();
    const problems: string[] = [];
    for (const rule of rules) {
      const coverage = coverageOf(rule, groups);
      if (!coverage.fires) problems.push(`${rule.alert}: no test where it fires`);
      if (!coverage.quietBeforeFor) {
        problems.push(`${rule.alert}: no quiet check at most its for: (${rule.for ?? '0m'}) before it fires`);
      }
      if (!coverage.clean) problems.push(`${rule.alert}: no test group in which it stays quiet`);
    }
    const names = new Set(rules.map((rule) => rule.alert));
    for (const group of groups) {
      for (const check of group.alert_rule_test ?? []) {
        if (!names.has(check.alertname))
          problems.push(`test "${group.name}" checks unknown alert ${check.alertname}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('does not count a quiet check from before the condition began as waiting for for:', () => {
    const rule: AlertRule = { alert: 'Example', expr: 'vector(1)', for: '10m' };
    const check = (at: string, fires: boolean) => ({
      eval_time: at,
      alertname: 'Example',
      exp_alerts: fires ? [{ exp_labels: {} }] : [],
    });
    expect(coverageOf(rule, [{ alert_rule_test: [check('5m', false), check('30m', true)] }])).toEqual({
      fires: true,
      quietBeforeFor: false,
      clean: false,
    });
    expect(
      coverageOf(rule, [
        { alert_rule_test: [check('21m', false), check('30m', true)] },
        { alert_rule_test: [check('30m', false)] },
      ]),
    ).toEqual({ fires: true, quietBeforeFor: true, clean: true });
    expect(coverageOf(rule, [{ alert_rule_test: [check('30m', false)] }]).fires).toBe(false);
  });

  it('renders with another runbook base into rules that promtool accepts, every runbook_url on that base', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'settledesk-alerts-render-'));
    try {
      const base = 'https://git.example.com/acme/settledesk/-/blob/v1.4.0';
      const run = await runCli(
        ['alerts', 'render', '--runbook-base', base, '--output', join(folder, 'settledesk.yml')],
        {},
      );
      expect(run.code, run.stderr).toBe(0);
      const rendered = await readFile(join(folder, 'settledesk.yml'), 'utf8');
      const urls = [...rendered.matchAll(/runbook_url: (\S+)/g)].map((match) => match[1]);
      expect(urls).toHaveLength(rules.length);
      expect(urls).toEqual(
        rules.map((rule) => `${base}/${runbookPathOf(rule.annotations?.runbook_url ?? '')}`),
      );
      expect(rendered).not.toContain(runbookBaseDefault);
      const check = await runPromtool(promtool, ['check', 'rules', 'settledesk.yml'], folder);
      expect(check.code, check.output).toBe(0);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('refuses to render with a runbook base that is not an absolute http(s) URL', async () => {
    const run = await runCli(['alerts', 'render', '--runbook-base', 'docs/{{ $labels.x }}'], {});
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('must be an absolute http:// or https:// URL');
    expect(run.stdout).toBe('');
  });

  it('is listed alert by alert in ops/README.md with the same severity and runbook', async () => {
    const readme = await readFile(join(opsDir, 'README.md'), 'utf8');
    const rows = new Map<string, { severity: string; link: string }>();
    for (const match of readme.matchAll(/^\| `(\w+)` +\| (\w+) +\|[^|]*\| \[[^\]]*\]\(([^)]+)\) +\|$/gm)) {
      rows.set(match[1] ?? '', { severity: match[2] ?? '', link: match[3] ?? '' });
    }
    const expected = new Map(
      rules.map((rule) => [
        rule.alert,
        {
          severity: rule.labels?.severity ?? '',
          link: `../${runbookPathOf(rule.annotations?.runbook_url ?? '')}`,
        },
      ]),
    );
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(expected));
  });
});

describe('ops/grafana dashboards', () => {
  it('are Grafana dashboards with a Prometheus data-source variable that every query uses', async () => {
    const dashboards = await readDashboards();
    expect(dashboards.map(({ file }) => file)).toEqual([
      'ops/grafana/database.json',
      'ops/grafana/deposits.json',
      'ops/grafana/money-path.json',
      'ops/grafana/on-call-overview.json',
      'ops/grafana/settlement.json',
    ]);
    const problems: string[] = [];
    const uids = new Set<string>();
    for (const { file, dashboard } of dashboards) {
      if (!dashboard.uid || uids.has(dashboard.uid)) problems.push(`${file}: missing or repeated uid`);
      uids.add(dashboard.uid ?? '');
      if (!dashboard.title) problems.push(`${file}: no title`);
      if (typeof dashboard.schemaVersion !== 'number' || dashboard.schemaVersion < 36) {
        problems.push(`${file}: schemaVersion ${dashboard.schemaVersion} is older than Grafana 9`);
      }
      const variable = dashboard.templating?.list?.find((entry) => entry.name === 'datasource');
      if (variable?.type !== 'datasource' || variable.query !== 'prometheus') {
        problems.push(`${file}: no Prometheus data-source variable named datasource`);
      }
      const ids = new Set<number>();
      for (const panel of panelsOf(dashboard)) {
        const name = `${file} panel ${panel.id} "${panel.title}"`;
        if (panel.id === undefined || ids.has(panel.id)) problems.push(`${name}: missing or repeated id`);
        ids.add(panel.id ?? -1);
        if (!panel.gridPos) problems.push(`${name}: no gridPos`);
        if (panel.type === 'row') continue;
        if ((panel.targets ?? []).length === 0) problems.push(`${name}: no targets`);
        for (const target of [panel, ...(panel.targets ?? [])]) {
          if (target.datasource?.type !== 'prometheus' || target.datasource.uid !== datasourceVariable) {
            problems.push(`${name}: does not use the ${datasourceVariable} variable`);
          }
        }
        for (const target of panel.targets ?? []) {
          if (!target.refId || (target.expr ?? '').trim() === '')
            problems.push(`${name}: a target without refId or expr`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('hold only PromQL that promtool parses', async () => {
    // promtool parses expressions in rule files, so each query becomes a recording rule; Grafana's
    // interval variables become plain durations first.
    const grafanaDurations: Record<string, string> = {
      $__rate_interval: '5m',
      $__interval: '1m',
      $__range: '6h',
    };
    const groups = (await readDashboards()).map(({ file, dashboard }) => ({
      name: file,
      rules: panelsOf(dashboard).flatMap((panel) =>
        (panel.targets ?? []).map((target) => ({
          record: `panel_${panel.id}_${target.refId}`,
          expr: (target.expr ?? '').replace(/\$__\w+/g, (name) => grafanaDurations[name] ?? name),
        })),
      ),
    }));
    const folder = await mkdtemp(join(tmpdir(), 'settledesk-dashboards-'));
    try {
      await writeFile(join(folder, 'dashboards.yml'), stringify({ groups }));
      const result = await runPromtool(promtool, ['check', 'rules', 'dashboards.yml'], folder);
      expect(result.code, result.output).toBe(0);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
