import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { locateTool, promtool as promtoolSpec } from './tools.ts';

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

/** One evaluation of a promtool expression test: the label sets expected at value 1 (none: quiet). */
export type ExpressionCheck = { atSeconds: number; firing: readonly string[] };

/**
 * Writes a promtool unit test of `expr` over `series` (each a series selector and its samples,
 * `intervalSeconds` apart) to `file`, runs it, and returns promtool's verdict. The drills use it to
 * evaluate an alert's expression on series built from a real scrape.
 */
export async function testExpression(options: {
  file: string;
  intervalSeconds: number;
  series: readonly { selector: string; values: string }[];
  expr: string;
  checks: readonly ExpressionCheck[];
}): Promise<PromtoolRun> {
  const lines = [
    'rule_files: []',
    'evaluation_interval: 15s',
    'tests:',
    `  - interval: ${options.intervalSeconds}s`,
    '    input_series:',
    ...options.series.flatMap((one) => [
      `      - series: '${one.selector}'`,
      `        values: '${one.values}'`,
    ]),
    '    promql_expr_test:',
    ...options.checks.flatMap((check) => [
      `      - expr: '${options.expr}'`,
      `        eval_time: ${check.atSeconds}s`,
      ...(check.firing.length === 0
        ? ['        exp_samples: []']
        : [
            '        exp_samples:',
            ...check.firing.flatMap((labels) => [`          - labels: '${labels}'`, '            value: 1']),
          ]),
    ]),
    '',
  ];
  await writeFile(options.file, lines.join('\n'));
  return runPromtool(await locatePromtool(), ['test', 'rules', options.file], dirname(options.file));
}
