import { type Config, ConfigError, loadConfig } from '../platform/config.ts';
import { createLogger, type Logger } from '../platform/logging.ts';
import { openRuntime, type Runtime } from '../platform/runtime.ts';

export type Output = { json: boolean };

/** A refusal the operator can act on: printed without a stack, exit status 1. */
export class CliError extends Error {
  override name = 'CliError';
}

export function print(output: Output, value: unknown, human: () => string): void {
  process.stdout.write(`${output.json ? JSON.stringify(value, bigintReplacer, 2) : human()}\n`);
}

function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

export function loadCliConfig(): Config {
  return loadConfig();
}

/** Command logs go to stderr so stdout stays clean for `--json` output. */
export function cliLogger(config: Config): Logger {
  return createLogger(process.env.LOG_LEVEL ? config.logLevel : 'warn', process.stderr);
}

export async function withRuntime<T>(
  options: { migrate: boolean },
  work: (runtime: Runtime) => Promise<T>,
): Promise<T> {
  const config = loadCliConfig();
  const runtime = await openRuntime(config, cliLogger(config), {
    migrate: options.migrate,
    applicationName: 'settledesk-cli',
  });
  try {
    return await work(runtime);
  } finally {
    await runtime.close();
  }
}

export function reportFailure(error: unknown): number {
  if (error instanceof ConfigError || error instanceof CliError) {
    process.stderr.write(`settledesk: ${error.message}\n`);
    return 1;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`settledesk: ${message}\n`);
  return 1;
}
