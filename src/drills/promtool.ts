import { execFile } from 'node:child_process';
import { join } from 'node:path';
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
