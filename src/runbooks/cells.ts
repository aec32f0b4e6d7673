import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../platform/config.ts';
import { findRunningSandbox } from '../sandbox/ownership.ts';
import { configuredEndpoints, sandboxDataDir } from '../stellar/connect.ts';
import { type Cell, type Runbook, RunbookError } from './parse.ts';

export { type Block, type Cell, parseRunbook, type Runbook, RunbookError, type Section } from './parse.ts';

export const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));
const cliEntry = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

/** A cell that runs longer than this is killed; runbook checks are meant to answer in seconds. */
export const cellTimeoutMsDefault = 120_000;
export const cellTimeoutMsMax = 30 * 60_000;
/** Per stream; more is dropped (and said so) so a runaway cell cannot exhaust memory. */
export const cellOutputBytesMax = 1024 * 1024;
/** Exit code reported for a killed cell, as coreutils `timeout` does. */
export const timedOutExitCode = 124;
export const shellLanguages: ReadonlySet<string> = new Set(['sh', 'bash', 'shell']);

export const runnerDefaults: Readonly<Record<string, string>> = {
  SETTLEDESK_URL: 'http://127.0.0.1:8080',
};

// Variables bash itself sets in every shell; carrying them would make the next cell inherit the
// previous cell's directory or nesting level instead of starting at the repository root.
const uncarried = new Set(['_', 'PWD', 'OLDPWD', 'SHLVL', 'SETTLEDESK_RUNBOOK_ENV_FILE']);

export type CellResult = {
  name: string;
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  truncated: boolean;
};

export type RunOptions = {
  /** Overrides on top of the runner's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Mutating cells run only with this set (`--yes`). */
  yes?: boolean;
  timeoutMs?: number;
  /** Called before each cell starts, for a live header. */
  onCellStart?: (cell: string) => void;
  /** Called with each chunk as it arrives, for live output. */
  onOutput?: (cell: string, stream: 'stdout' | 'stderr', chunk: string) => void;
};

/**
 * Runs the named cells in the order given, each with `bash -euo pipefail` from the repository
 * root, with `settledesk` on PATH. What a cell exports is passed to the next cell of the same
 * call. Stops at the first cell that exits non-zero; that cell's result is the last one.
 * Refuses (throws before anything runs) an unknown name, a non-shell cell, or a mutating cell
 * without `yes`.
 */
export async function runCells(
  runbook: Runbook,
  names: readonly string[],
  options: RunOptions = {},
): Promise<CellResult[]> {
  const cells = selectCells(runbook, names, options.yes ?? false);
  const timeoutMs = options.timeoutMs ?? cellTimeoutMsDefault;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > cellTimeoutMsMax)
    throw new RunbookError(`timeoutMs must be an integer between 1 and ${cellTimeoutMsMax}`);
  const workspace = mkdtempSync(join(tmpdir(), 'settledesk-runbook-'));
  try {
    const cwd = options.cwd ?? repositoryRoot;
    let env = initialEnv(workspace, options.env ?? {});
    env = { ...(await stellarDefaults(env, cwd)), ...env };
    const results: CellResult[] = [];
    for (const cell of cells) {
      const run = await runCell(
        cell,
        { workspace, env, cwd: options.cwd ?? repositoryRoot, timeoutMs },
        options,
      );
      results.push(run.result);
      if (run.result.code !== 0) break;
      env = run.env;
    }
    return results;
  } finally {
    rmSync(workspace, { recursive: true, force: true });
  }
}

function selectCells(runbook: Runbook, names: readonly string[], yes: boolean): Cell[] {
  if (names.length === 0) throw new RunbookError(`${runbook.file}: name at least one cell to run`);
  const cells = names.map((name) => {
    const cell = runbook.cells.find((candidate) => candidate.name === name);
    if (!cell) {
      const known = runbook.cells.map((candidate) => candidate.name).join(', ') || 'none';
      throw new RunbookError(`${runbook.file}: no cell named "${name}" (cells: ${known})`);
    }
    if (!shellLanguages.has(cell.language))
      throw new RunbookError(
        `${runbook.file}:${cell.line}: cell "${name}" is ${cell.language}, not a shell cell`,
      );
    return cell;
  });
  const refused = cells.filter((cell) => cell.mutating && !yes);
  if (refused.length > 0)
    throw new RunbookError(
      `${runbook.file}: refusing to run mutating cell ${refused.map((cell) => `"${cell.name}"`).join(', ')} without --yes`,
    );
  return cells;
}

function initialEnv(
  workspace: string,
  overrides: Record<string, string | undefined>,
): Record<string, string> {
  const bin = join(workspace, 'bin');
  writeShim(bin);
  const merged: Record<string, string | undefined> = { ...runnerDefaults, ...process.env, ...overrides };
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(merged)) if (value !== undefined) env[key] = value;
  env.PATH = env.PATH ? `${bin}:${env.PATH}` : bin;
  return env;
}

/**
 * STELLAR_HORIZON_URL (the first Horizon), STELLAR_RPC_URL and, on the sandbox,
 * SANDBOX_CONTROL_URL, found the way the CLI finds them: configured URLs, else the public ones of
 * the network, else the sandbox that a running `serve` published in the data folder. Nothing is
 * set when none is known. STELLAR_RPC_URL is also a setting of settledesk itself, which refuses it
 * without STELLAR_HORIZON_URLS, so that is set too, to the same URLs the CLI would use anyway.
 */
async function stellarDefaults(env: Record<string, string>, cwd: string): Promise<Record<string, string>> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env, cwd);
  } catch {
    // An invalid configuration is reported by the first settledesk command a cell runs.
    return {};
  }
  const found =
    configuredEndpoints(config) ?? (await findRunningSandbox(sandboxDataDir(config)).catch(() => undefined));
  if (!found) return {};
  return {
    STELLAR_HORIZON_URL: found.horizonUrls[0]!,
    STELLAR_HORIZON_URLS: found.horizonUrls.join(','),
    STELLAR_RPC_URL: found.rpcUrl,
    ...(found.controlUrl === undefined ? {} : { SANDBOX_CONTROL_URL: found.controlUrl }),
  };
}

/** `settledesk` in cells is this checkout's CLI, run by the Node that runs the runner. */
function writeShim(bin: string): void {
  const shim = join(bin, 'settledesk');
  mkdirSync(bin);
  writeFileSync(shim, `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(cliEntry)} "$@"\n`);
  chmodSync(shim, 0o755);
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

type CellContext = { workspace: string; env: Record<string, string>; cwd: string; timeoutMs: number };

async function runCell(
  cell: Cell,
  context: CellContext,
  options: RunOptions,
): Promise<{ result: CellResult; env: Record<string, string> }> {
  // The script file is named after the cell so bash's own messages ("check-horizon.sh: line 2:")
  // point at it; the EXIT trap dumps the exported environment for the next cell.
  const script = join(context.workspace, `${cell.name}.sh`);
  const envFile = join(context.workspace, `${cell.name}.env`);
  writeFileSync(script, `${cell.code}\n`);
  options.onCellStart?.(cell.name);
  const started = performance.now();
  const child = spawn(
    'bash',
    ['-euo', 'pipefail', '-c', `trap 'env -0 > "$SETTLEDESK_RUNBOOK_ENV_FILE"' EXIT\n. "$0"`, script],
    {
      cwd: context.cwd,
      env: { ...context.env, SETTLEDESK_RUNBOOK_ENV_FILE: envFile },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  const stdout = collect(child.stdout, (chunk) => options.onOutput?.(cell.name, 'stdout', chunk));
  const stderr = collect(child.stderr, (chunk) => options.onOutput?.(cell.name, 'stderr', chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, context.timeoutMs);
  const exit = await exited(child).finally(() => clearTimeout(timer));
  const code = timedOut ? timedOutExitCode : (exit.code ?? 128 + signalNumber(exit.signal));
  const result: CellResult = {
    name: cell.name,
    code,
    stdout: stdout.text(),
    stderr: timedOut
      ? `${stderr.text()}cell "${cell.name}" timed out after ${context.timeoutMs} ms\n`
      : stderr.text(),
    durationMs: Math.round(performance.now() - started),
    timedOut,
    truncated: stdout.truncated() || stderr.truncated(),
  };
  return { result, env: code === 0 ? readEnv(envFile, context.env) : context.env };
}

function collect(
  stream: NodeJS.ReadableStream | null,
  onChunk: (chunk: string) => void,
): { text: () => string; truncated: () => boolean } {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let dropped = 0;
  stream?.on('data', (chunk: Buffer) => {
    onChunk(chunk.toString('utf8'));
    const room = cellOutputBytesMax - bytes;
    if (room > 0) chunks.push(chunk.subarray(0, room));
    bytes += Math.min(room > 0 ? room : 0, chunk.length);
    dropped += Math.max(0, chunk.length - Math.max(room, 0));
  });
  return {
    text: () =>
      Buffer.concat(chunks).toString('utf8') +
      (dropped > 0 ? `\n[${dropped} more bytes of output dropped]\n` : ''),
    truncated: () => dropped > 0,
  };
}

// A process the cell started in the background (a daemon such as `pg_ctl start`) may keep the
// pipes open after bash exits; the cell ends when bash exits, and the pipes get a short grace to
// drain before they are closed. Only a timeout ends the whole process group.
const pipeDrainMs = 200;

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const finish = () => resolve({ code, signal });
      const grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, pipeDrainMs);
      child.on('close', () => {
        clearTimeout(grace);
        finish();
      });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is already gone: nothing left to end.
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal === null ? 0 : constants.signals[signal];
}

function readEnv(file: string, fallback: Record<string, string>): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
  const env: Record<string, string> = {};
  for (const entry of text.split('\0')) {
    const equals = entry.indexOf('=');
    if (equals <= 0) continue;
    const key = entry.slice(0, equals);
    if (!uncarried.has(key)) env[key] = entry.slice(equals + 1);
  }
  return env;
}
