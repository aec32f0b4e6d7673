import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../platform/db/embedded.ts';
import { type CellResult, parseRunbook, type Runbook, repositoryRoot, runCells } from '../runbooks/cells.ts';
import { cellToolEnv } from './tools.ts';

/**
 * A drill breaks one thing on purpose, checks that detection sees it, runs the named cells of its
 * runbook, and checks that the system recovered with money intact. It is listed in
 * `src/drills/registry.ts`, run by `settledesk drill run NAME` and by `test/drills/NAME.test.ts`.
 */
export type Drill = {
  /** kebab-case, as in `settledesk drill run db-failover` */
  name: string;
  /** The runbook whose cells it runs: a file name under docs/runbooks/. */
  runbook: string;
  description: string;
  run(context: DrillContext): Promise<void>;
};

export type DrillReport = {
  drill: string;
  runbook: string;
  durationMs: number;
  steps: { name: string; durationMs: number; ok: boolean }[];
  /** What the drill measured, by name (e.g. `firstSuccessAfterKillMs`). */
  figures: Record<string, number>;
};

export type RunDrillOptions = {
  /** One line per event; defaults to stdout. */
  print?: (line: string) => void;
  /** The whole drill, cleanup excluded. */
  timeoutMs?: number;
};

/**
 * A drill that did not pass. The message names the runbook file and, when a cell did not do its
 * job, that cell; otherwise the drill step that failed.
 */
export class DrillFailure extends Error {
  override name = 'DrillFailure';
  readonly runbook: string;
  readonly cell: string | undefined;

  constructor(runbook: string, cell: string | undefined, detail: string) {
    super(
      cell === undefined
        ? `${runbook}: ${detail}`
        : `${runbook}, cell "${cell}" did not do its job: ${detail}`,
    );
    this.runbook = runbook;
    this.cell = cell;
  }
}

export const drillTimeoutMsDefault = 150_000;
const cleanupStepMsMax = 20_000;
const serviceReadyMsDefault = 60_000;
const serviceStopMs = 15_000;
const cliTimeoutMsDefault = 60_000;
/** Kept in memory per child process for error messages; the whole log is in the drill folder. */
const logTailBytesMax = 16 * 1024;
const cellOutputShownMax = 1_500;
const serviceLinesShown = 30;
const pollMs = 100;

const cliEntry = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
export const runbooksDir = join(repositoryRoot, 'docs', 'runbooks');

export type CliResult = { code: number | null; stdout: string; stderr: string };

/** `settledesk serve` as a child process in its own process group, logging to a file. */
export type ServiceProcess = {
  pid: number;
  url: string;
  port: number;
  logFile: string;
  alive(): boolean;
  logTail(): string;
  /** SIGTERM, then SIGKILL to its group if it has not exited after `serviceStopMs`. */
  stop(): Promise<ServiceStop>;
};

/** How a stopped service ended; `durationMs` from SIGTERM to exit, undefined if it had exited before. */
export type ServiceStop = {
  durationMs: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  killed: boolean;
};

type Cleanup = { what: string; run: () => Promise<void> };

export class DrillContext {
  readonly drill: string;
  /** `docs/runbooks/<file>`, as failures name it. */
  readonly runbookPath: string;
  /** A folder every user can traverse (mode 755), removed after the drill. */
  readonly dir: string;
  /** The environment the runbook's cells run with; drills add what they start. */
  readonly env: Record<string, string | undefined> = {};
  readonly figures: Record<string, number> = {};
  readonly steps: DrillReport['steps'] = [];
  readonly #runbook: Runbook;
  readonly #print: (line: string) => void;
  readonly #started = performance.now();
  readonly #cleanups: Cleanup[] = [];
  readonly #services: ServiceProcess[] = [];
  #currentStep = 'setup';

  constructor(drill: Drill, dir: string, print: (line: string) => void) {
    this.drill = drill.name;
    this.runbookPath = `docs/runbooks/${drill.runbook}`;
    this.#runbook = parseRunbook(join(runbooksDir, drill.runbook));
    this.dir = dir;
    this.#print = print;
  }

  /** Runs one step of the drill and prints it with its start time and duration. */
  async step<T>(name: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    this.#currentStep = name;
    this.#print(`[${this.drill} +${this.#elapsedS(started)}s] ${name}`);
    try {
      const result = await work();
      const durationMs = Math.round(performance.now() - started);
      this.steps.push({ name, durationMs, ok: true });
      this.#print(`[${this.drill} +${this.#elapsedS()}s]   ok (${durationMs} ms)`);
      return result;
    } catch (error) {
      const durationMs = Math.round(performance.now() - started);
      this.steps.push({ name, durationMs, ok: false });
      this.#print(`[${this.drill} +${this.#elapsedS()}s]   FAILED (${durationMs} ms): ${messageOf(error)}`);
      throw error;
    }
  }

  /** A fact worth seeing in the output; `figure` also records it in the report. */
  note(text: string): void {
    this.#print(`[${this.drill}]   ${text}`);
  }

  figure(name: string, value: number, text: string): void {
    this.figures[name] = value;
    this.note(text);
  }

  /** Registers a cleanup; cleanups run last-registered first, also when the drill fails. */
  defer(what: string, run: () => Promise<void>): void {
    this.#cleanups.push({ what, run });
  }

  /** A failure of the current step that no single cell is to blame for. */
  fail(detail: string): DrillFailure {
    return new DrillFailure(
      this.runbookPath,
      undefined,
      `drill ${this.drill}, step "${this.#currentStep}": ${detail}`,
    );
  }

  /** Runs the runbook's cells in order; any cell that exits non-zero fails the drill, naming it. */
  async cells(
    names: readonly string[],
    options: { yes?: boolean; timeoutMs?: number } = {},
  ): Promise<CellResult[]> {
    const results = await this.#runCells(names, options);
    const failed = results.find((result) => result.code !== 0);
    if (failed)
      throw new DrillFailure(this.runbookPath, failed.name, `exited ${failed.code}: ${tail(failed)}`);
    return results;
  }

  /**
   * Runs a read-only cell that checks a condition, and expects it to report that the condition
   * does not hold (exit non-zero): the detection half of a drill.
   */
  async cellReports(name: string, what: string, options: { timeoutMs?: number } = {}): Promise<CellResult> {
    const [result] = await this.#runCells([name], options);
    if (result === undefined || result.code === 0)
      throw new DrillFailure(this.runbookPath, name, `exited 0, but it should report that ${what}`);
    return result;
  }

  /** Checks what a cell was meant to achieve; a failure names that cell. */
  async expectAfter<T>(cell: string, what: string, check: () => Promise<T>): Promise<T> {
    try {
      return await check();
    } catch (error) {
      if (error instanceof DrillFailure) throw error;
      throw new DrillFailure(this.runbookPath, cell, `${what}: ${messageOf(error)}`);
    }
  }

  /** Polls until `probe` returns a value (not undefined), at most `timeoutMs`. */
  async waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let last: unknown;
    while (performance.now() < deadline) {
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (error) {
        last = error;
      }
      await sleep(pollMs);
    }
    const why = last === undefined ? '' : ` (last error: ${messageOf(last)})`;
    throw new Error(`${what}: not within ${timeoutMs} ms${why}`);
  }

  /** Runs this checkout's `settledesk` CLI as a process. */
  async cli(
    args: readonly string[],
    env: Record<string, string | undefined>,
    timeoutMs = cliTimeoutMsDefault,
  ) {
    return runProcess(process.execPath, [cliEntry, ...args], env, timeoutMs);
  }

  /**
   * Starts `settledesk serve` with `env` on a free port, waits until `/health/ready` answers 200,
   * and stops it (SIGTERM, then SIGKILL to its group) when the drill ends.
   */
  async startService(
    env: Record<string, string | undefined>,
    options: { readyTimeoutMs?: number } = {},
  ): Promise<ServiceProcess> {
    const port = await freePort();
    const logFile = join(this.dir, `serve-${port}.log`);
    const log = createWriteStream(logFile);
    const child = spawn(process.execPath, [cliEntry, 'serve'], {
      env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error('could not spawn settledesk serve');
    let recent = '';
    const keep = (chunk: Buffer) => {
      log.write(chunk);
      recent = (recent + chunk.toString('utf8')).slice(-logTailBytesMax);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let exited = false;
    let ended: Pick<ServiceStop, 'code' | 'signal'> = { code: null, signal: null };
    let exitedAt = 0;
    const exit = new Promise<void>((resolve) => {
      child.on('exit', (code, signal) => {
        exited = true;
        exitedAt = performance.now();
        ended = { code, signal };
        resolve();
      });
    });
    let stopping: Promise<ServiceStop> | undefined;
    const stopOnce = async (): Promise<ServiceStop> => {
      let durationMs: number | undefined;
      let killed = false;
      if (!exited) {
        const signalledAt = performance.now();
        signalGroup(pid, 'SIGTERM');
        await Promise.race([exit, bound(serviceStopMs)]);
        if (!exited) {
          killed = true;
          signalGroup(pid, 'SIGKILL');
        }
        await Promise.race([exit, bound(serviceStopMs)]);
        durationMs = exited ? Math.round(exitedAt - signalledAt) : undefined;
      }
      await new Promise<void>((resolve) => log.end(resolve));
      return { durationMs, ...ended, killed };
    };
    const stop = () => {
      stopping ??= stopOnce();
      return stopping;
    };
    this.defer(`stop settledesk serve (pid ${pid})`, async () => {
      await stop();
    });
    const url = `http://127.0.0.1:${port}`;
    await this.waitFor(
      `settledesk serve to be ready on ${url}`,
      async () => {
        if (exited) throw new Error(`settledesk serve exited while starting: ${recent.slice(-3000)}`);
        const response = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(5_000) });
        await response.body?.cancel();
        return response.status === 200 ? true : undefined;
      },
      options.readyTimeoutMs ?? serviceReadyMsDefault,
    ).catch((error: unknown) => {
      if (exited) throw new Error(`settledesk serve exited while starting: ${recent.slice(-3000)}`);
      throw error;
    });
    const service = { pid, url, port, logFile, alive: () => !exited, logTail: () => recent, stop };
    this.#services.push(service);
    return service;
  }

  /** After a failure: what each service printed last, and whether it is still running. */
  printServiceLogs(): void {
    for (const service of this.#services) {
      const lines = service.logTail().trimEnd().split('\n').slice(-serviceLinesShown);
      this.#print(
        `[${this.drill}] settledesk serve pid ${service.pid} (${service.alive() ? 'running' : 'exited'}), last lines of ${service.logFile}:`,
      );
      this.#print(indent(lines.join('\n')));
    }
  }

  async #runCells(names: readonly string[], options: { yes?: boolean; timeoutMs?: number }) {
    const results = await runCells(this.#runbook, names, {
      env: { ...(await cellToolEnv()), ...this.env },
      yes: options.yes ?? false,
      timeoutMs: options.timeoutMs ?? 60_000,
    });
    for (const result of results) {
      this.#print(`[${this.drill}]   cell ${result.name}: exit ${result.code} in ${result.durationMs} ms`);
      const output = `${result.stdout}${result.stderr}`.trim();
      if (output !== '') this.#print(indent(output.slice(-cellOutputShownMax)));
    }
    return results;
  }

  async cleanup(): Promise<void> {
    while (this.#cleanups.length > 0) {
      const cleanup = this.#cleanups.pop()!;
      try {
        await Promise.race([
          cleanup.run(),
          bound(cleanupStepMsMax).then(() => {
            throw new Error(`did not finish within ${cleanupStepMsMax} ms`);
          }),
        ]);
      } catch (error) {
        this.#print(`[${this.drill}] cleanup "${cleanup.what}" failed: ${messageOf(error)}`);
      }
    }
  }

  #elapsedS(at = performance.now()): string {
    return ((at - this.#started) / 1000).toFixed(1);
  }
}

/**
 * Runs a drill in a fresh folder, bounded in time; cleans up every process and folder it started,
 * also when it fails, and then throws the failure.
 */
export async function runDrill(drill: Drill, options: RunDrillOptions = {}): Promise<DrillReport> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const timeoutMs = options.timeoutMs ?? drillTimeoutMsDefault;
  const dir = await mkdtemp(join(tmpdir(), `settledesk-drill-${drill.name}-`));
  // mkdtemp makes the folder 0700; database servers started as another user must enter it.
  await chmod(dir, 0o755);
  const started = performance.now();
  const context = new DrillContext(drill, dir, print);
  print(`[${drill.name}] drill of ${context.runbookPath} in ${dir}`);
  let timer: NodeJS.Timeout | undefined;
  try {
    const running = drill.run(context);
    running.catch(() => undefined);
    await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(context.fail(`the drill did not finish within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    context.printServiceLogs();
    if (error instanceof DrillFailure) throw error;
    throw context.fail(messageOf(error));
  } finally {
    clearTimeout(timer);
    await context.cleanup();
    await rm(dir, { recursive: true, force: true });
    print(`[${drill.name}] cleaned up (${Math.round(performance.now() - started)} ms in all)`);
  }
  return {
    drill: drill.name,
    runbook: context.runbookPath,
    durationMs: Math.round(performance.now() - started),
    steps: context.steps,
    figures: context.figures,
  };
}

/**
 * As root, servers started as another user (PostgreSQL as `postgres`) must traverse every folder
 * above `path`; say which one stops them instead of letting them fail with a permission error.
 */
export async function assertTraversable(path: string, who: string): Promise<void> {
  let current = path;
  while (true) {
    const info = await stat(current);
    if ((info.mode & 0o001) === 0)
      throw new Error(
        `${who} cannot enter ${current} (mode ${(info.mode & 0o777).toString(8)}), which lies above ${path}; ` +
          'set TMPDIR to a folder every user can traverse, such as /tmp',
      );
    if (current === parse(current).root) return;
    current = dirname(current);
  }
}

export function runProcess(
  command: string,
  args: readonly string[],
  env: Record<string, string | undefined>,
  timeoutMs: number,
  options: { uid?: number; gid?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...options,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout = (stdout + chunk.toString('utf8')).slice(-logTailBytesMax);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-logTailBytesMax);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already: nothing left to signal.
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A bound raced against other work: it does not keep the process alive once that work is done. */
function bound(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function tail(result: CellResult): string {
  const text = `${result.stderr.trim() || result.stdout.trim()}`;
  return text === '' ? '(no output)' : text.slice(-cellOutputShownMax);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `      | ${line}`)
    .join('\n');
}
