import { userInfo } from 'node:os';
import { type Config, ConfigError, loadConfig } from '../platform/config.ts';
import { DomainError, OperatingError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import { createLogger, type Logger } from '../platform/logging.ts';
import { openRuntime, type Runtime } from '../platform/runtime.ts';
import { SandboxInUseError, SandboxPortInUseError } from '../sandbox/ownership.ts';

export type Output = { json: boolean };

/** A refusal the operator can act on: printed without a stack, exit status 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/** The most rows a `list` command prints, as the API's pages. */
export const listLimitMax = 200;

/** `--limit`: a whole number from 1 to `max`. */
export function limitOf(text: string, max = listLimitMax): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new CliError(`--limit must be a whole number from 1 to ${max}`);
  }
  return limit;
}

/** An optional account filter such as `--payer`: a uuid when given. */
export function accountOf(option: string, text: string | undefined): string | undefined {
  if (text !== undefined && !isUuid(text)) throw new CliError(`${option} must be an account id (uuid)`);
  return text;
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
  if (error instanceof DomainError) {
    process.stderr.write(`settledesk: ${error.message} (${error.type})\n`);
    return 1;
  }
  if (
    error instanceof ConfigError ||
    error instanceof OperatingError ||
    error instanceof CliError ||
    error instanceof SandboxInUseError ||
    error instanceof SandboxPortInUseError
  ) {
    process.stderr.write(`settledesk: ${error.message}\n`);
    return 1;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`settledesk: ${message}\n`);
  return 1;
}

/** Who a CLI action is attributed to in the audit log: `--as`, else SETTLEDESK_OPERATOR, else the OS user. */
export function operatorName(as: string | undefined): string {
  const name = as ?? process.env.SETTLEDESK_OPERATOR ?? `cli:${userInfo().username}`;
  if (!/^[A-Za-z0-9._@:-]{1,128}$/.test(name))
    throw new CliError('--as must be 1-128 characters of [A-Za-z0-9._@:-]');
  return name;
}
