import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export type Finished = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };

/** Runs the real CLI in a child process (the same Node that runs the tests). */
export function spawnCli(
  args: readonly string[],
  env: Record<string, string | undefined>,
  options: { ownProcessGroup?: boolean } = {},
): ChildProcess & { output: () => { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...process.env, DATABASE_URL: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.ownProcessGroup ?? false,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  return Object.assign(child, { output: () => ({ stdout, stderr }) });
}

export function finished(child: ReturnType<typeof spawnCli>, timeoutMs = 60_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`process did not finish within ${timeoutMs} ms: ${child.output().stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' can fire before the pipes drain; 'close' waits for them.
      child.on('close', () => resolve({ code, signal, ...child.output() }));
      if (child.stdout?.closed && child.stderr?.closed) resolve({ code, signal, ...child.output() });
    });
  });
}

export function runCli(
  args: readonly string[],
  env: Record<string, string | undefined>,
  timeoutMs?: number,
): Promise<Finished> {
  return finished(spawnCli(args, env), timeoutMs);
}

export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
