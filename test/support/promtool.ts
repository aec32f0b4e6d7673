import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { locateTool, promtool as promtoolSpec } from '../../src/drills/tools.ts';

const run = promisify(execFile);

const outputBytesMax = 16 * 1024 * 1024;

/**
 * The promtool to run: on PATH, at /usr/bin/promtool, or unpacked from Debian's prometheus package
 * into node_modules/.cache/settledesk/promtool/ (src/drills/tools.ts). Throws a ToolMissingError
 * saying what to install when none can be had.
 */
export async function locatePromtool(): Promise<string> {
  const located = await locateTool(promtoolSpec);
  return join(located.binDir, 'promtool');
}

export type PromtoolRun = { code: number; output: string };

/** Runs promtool and returns its exit status with stdout and stderr together (it splits its report). */
export async function runPromtool(
  promtool: string,
  args: readonly string[],
  cwd: string,
): Promise<PromtoolRun> {
  try {
    const { stdout, stderr } = await run(promtool, [...args], {
      cwd,
      timeout: 120_000,
      maxBuffer: outputBytesMax,
    });
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

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
