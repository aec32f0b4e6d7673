import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';

const run = promisify(execFile);

/**
 * promtool comes from Debian's `prometheus` package. Unpacking the package into this folder (rather
 * than installing it) needs no root and starts no Prometheus server.
 */
export const promtoolCacheDir = fileURLToPath(
  new URL('../../node_modules/.cache/settledesk/promtool/', import.meta.url),
);
const cachedPromtool = join(promtoolCacheDir, 'root', 'usr', 'bin', 'promtool');
const systemPromtool = '/usr/bin/promtool';
const aptTimeoutMs = 240_000;
const outputBytesMax = 16 * 1024 * 1024;

/**
 * The promtool to run: on PATH, at /usr/bin/promtool, or in the cache folder; otherwise it is
 * unpacked from `apt-get download prometheus`, and only if that fails installed with
 * `apt-get install -y prometheus`. Throws an error saying what to install when all of that fails.
 */
export async function locatePromtool(): Promise<string> {
  const found = await findPromtool();
  if (found) return found;
  const problems: string[] = [];
  try {
    return await unpackFromDebianPackage();
  } catch (error) {
    problems.push(`apt-get download prometheus + dpkg-deb -x: ${describe(error)}`);
  }
  try {
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'prometheus'], {
      timeout: aptTimeoutMs,
      maxBuffer: outputBytesMax,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (await works(systemPromtool)) return systemPromtool;
    problems.push('apt-get install -y prometheus: no working /usr/bin/promtool afterwards');
  } catch (error) {
    problems.push(`apt-get install -y prometheus: ${describe(error)}`);
  }
  throw new Error(
    [
      'promtool is needed to check and unit-test ops/prometheus/alerts.yml, and it was not found on',
      `PATH, at ${systemPromtool} or in ${promtoolCacheDir}, nor could it be installed:`,
      ...problems.map((problem) => `  - ${problem}`),
      "Install Debian's prometheus package (`sudo apt-get install prometheus`, which provides",
      '/usr/bin/promtool), or put a promtool binary (Prometheus 2.x) on PATH, and run the tests again.',
    ].join('\n'),
  );
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

async function findPromtool(): Promise<string | undefined> {
  const onPath = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((folder) => folder !== '')
    .map((folder) => join(folder, 'promtool'));
  for (const candidate of [...onPath, systemPromtool, cachedPromtool]) {
    if (await works(candidate)) return candidate;
  }
  return undefined;
}

async function works(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    await run(path, ['--version'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Downloads the .deb into a fresh folder and unpacks it there, then moves the tree into place in
 * one rename, so test files racing each other never see half a binary.
 */
async function unpackFromDebianPackage(): Promise<string> {
  await mkdir(promtoolCacheDir, { recursive: true });
  const work = await mkdtemp(join(promtoolCacheDir, 'download-'));
  try {
    await download(work);
    const debs = (await readdir(work)).filter(
      (name) => name.startsWith('prometheus_') && name.endsWith('.deb'),
    );
    const deb = debs[0];
    if (deb === undefined) throw new Error(`apt-get download left no prometheus_*.deb in ${work}`);
    await run('dpkg-deb', ['-x', join(work, deb), join(work, 'root')], {
      timeout: aptTimeoutMs,
      maxBuffer: outputBytesMax,
    });
    try {
      await rename(join(work, 'root'), join(promtoolCacheDir, 'root'));
    } catch (error) {
      // Another test process unpacked it first; its copy is as good as ours.
      if (!(await works(cachedPromtool))) throw error;
    }
    if (!(await works(cachedPromtool))) throw new Error(`${cachedPromtool} does not run`);
    return cachedPromtool;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A machine that never ran `apt-get update` has no package lists; as root, fetch them once and retry. */
async function download(folder: string): Promise<void> {
  const options = { cwd: folder, timeout: aptTimeoutMs, maxBuffer: outputBytesMax };
  try {
    await run('apt-get', ['download', 'prometheus'], options);
  } catch (error) {
    if (process.getuid?.() !== 0) throw error;
    await run('apt-get', ['update'], options);
    await run('apt-get', ['download', 'prometheus'], options);
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const stderr = 'stderr' in error && typeof error.stderr === 'string' ? error.stderr.trim() : '';
    const lastLine = stderr.split('\n').at(-1);
    return lastLine ? `${error.message.split('\n')[0]} (${lastLine})` : error.message;
  }
  return String(error);
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
