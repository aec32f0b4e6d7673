import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram } from '../cli/main.ts';
import {
  declaredMetricNames,
  prometheusBuiltinNames,
  recordedMetricNames,
  seriesNames,
} from '../ops/promql-names.ts';
import { OperatingError } from '../platform/errors.ts';
import type { App } from '../platform/http/app.ts';
import { registry } from '../platform/metrics.ts';
import { repositoryRoot } from './cells.ts';
import { routesFromPrintout } from './endpoints.ts';
import type { LintContext } from './lint.ts';

export const alertRulesPath = join(repositoryRoot, 'ops', 'prometheus', 'alerts.yml');
const sourceFilesMax = 2000;

function sourceFiles(directory: string, found: string[] = []): string[] {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) sourceFiles(path, found);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) found.push(path);
    if (found.length > sourceFilesMax)
      throw new OperatingError(
        `more than ${sourceFilesMax} source files under ${directory}: raise sourceFilesMax`,
      );
  }
  return found;
}

function ruleFiles(): string[] {
  const directory = join(repositoryRoot, 'ops', 'prometheus');
  if (!existsSync(directory)) return [];
  return readdirSync(directory)
    .filter((name) => /\.ya?ml$/.test(name) && !name.includes('.test.'))
    .map((name) => readFileSync(join(directory, name), 'utf8'));
}

/**
 * What the runbooks are checked against, read from the running code: the CLI program, the
 * routes of a built app, every metric the registry holds or the source declares, and the
 * alerting rules.
 */
export async function buildLintContext(app: App): Promise<LintContext> {
  const metrics = new Set<string>([...prometheusBuiltinNames]);
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const name of seriesNames(metric.name, String(metric.type))) metrics.add(name);
  }
  const sources = sourceFiles(join(repositoryRoot, 'src')).map((path) => readFileSync(path, 'utf8'));
  for (const name of declaredMetricNames(sources)) metrics.add(name);
  for (const name of recordedMetricNames(ruleFiles())) metrics.add(name);
  return {
    program: buildProgram(),
    routes: routesFromPrintout(app.printRoutes({ commonPrefix: false })),
    metrics,
    alertRules: existsSync(alertRulesPath)
      ? { file: alertRulesPath, text: readFileSync(alertRulesPath, 'utf8') }
      : undefined,
    root: repositoryRoot,
  };
}
