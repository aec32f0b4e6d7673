import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// Locating and running promtool is shared with the drills, which evaluate alert expressions.
export { locatePromtool, type PromtoolRun, runPromtool } from '../../src/drills/promtool.ts';

/* The files promtool checks, read the same way by the ops tests. */

export const opsDir = fileURLToPath(new URL('../../ops/', import.meta.url));
export const alertsFile = join(opsDir, 'prometheus', 'alerts.yml');
export const alertTestsFile = join(opsDir, 'prometheus', 'alerts.test.yml');
export const grafanaDir = join(opsDir, 'grafana');

export type AlertRule = {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
};

export async function readAlertRules(): Promise<AlertRule[]> {
  const file = parse(await readFile(alertsFile, 'utf8')) as { groups: { rules: AlertRule[] }[] };
  return file.groups.flatMap((group) => group.rules);
}

export type AlertCheck = {
  eval_time: string;
  alertname: string;
  exp_alerts?: { exp_labels?: Record<string, string> }[];
};
export type AlertTestGroup = { name?: string; alert_rule_test?: AlertCheck[] };

export async function readAlertTests(): Promise<AlertTestGroup[]> {
  const file = parse(await readFile(alertTestsFile, 'utf8')) as { tests: AlertTestGroup[] };
  return file.tests;
}

export type GrafanaTarget = { refId?: string; expr?: string; datasource?: { type?: string; uid?: string } };
export type GrafanaPanel = {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
};
export type GrafanaDashboard = {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  templating?: { list?: { name?: string; type?: string; query?: string }[] };
  panels?: GrafanaPanel[];
};

export async function readDashboards(): Promise<{ file: string; dashboard: GrafanaDashboard }[]> {
  const files = (await readdir(grafanaDir)).filter((name) => name.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (file) => ({
      file: `ops/grafana/${file}`,
      dashboard: JSON.parse(await readFile(join(grafanaDir, file), 'utf8')) as GrafanaDashboard,
    })),
  );
}

/** Every panel, rows' collapsed children included. */
export function panelsOf(dashboard: GrafanaDashboard): GrafanaPanel[] {
  return (dashboard.panels ?? []).flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

/** Where a PromQL expression comes from, for error messages. */
export type Query = { where: string; expr: string };

export async function readQueries(): Promise<Query[]> {
  const alerts = (await readAlertRules()).map((rule) => ({
    where: `ops/prometheus/alerts.yml ${rule.alert}`,
    expr: rule.expr,
  }));
  const panels = (await readDashboards()).flatMap(({ file, dashboard }) =>
    panelsOf(dashboard).flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({
        where: `${file} panel ${panel.id} "${panel.title}" ${target.refId}`,
        expr: target.expr ?? '',
      })),
    ),
  );
  return [...alerts, ...panels];
}
