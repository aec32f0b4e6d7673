import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DestinationStream } from 'pino';
import { createDomains, type Domains } from '../../src/domains.ts';
import type { Role } from '../../src/platform/auth/roles.ts';
import { issueToken } from '../../src/platform/auth/tokens.ts';
import { type LogLevel, loadConfig, rateLimitMax } from '../../src/platform/config.ts';
import type { App } from '../../src/platform/http/app.ts';
import { createLogger } from '../../src/platform/logging.ts';
import { openRuntime, type Runtime } from '../../src/platform/runtime.ts';
import { buildApp } from '../../src/server.ts';
import type { StellarEndpoints } from '../../src/stellar/endpoints.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export type TestService = {
  db: TestDatabase;
  runtime: Runtime;
  domains: Domains;
  app: App;
  token(role: Role, subject?: string): Promise<string>;
  close(): Promise<void>;
};

/** The keyring encryption key every test instance shares, as instances of one deployment would. */
export const testKeyringKey = randomBytes(32).toString('base64');

export async function tempDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'settledesk-data-'));
  await chmod(dir, 0o755);
  return dir;
}

export async function testEnv(
  db: TestDatabase,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  return {
    DATABASE_URL: db.url,
    SETTLEDESK_KEYRING_KEY: testKeyringKey,
    SETTLEDESK_DATA_DIR: await tempDataDir(),
    PORT: '0',
    SANDBOX_PORT: '0',
    WORKER_METRICS_PORT: '0',
    SANDBOX_LEDGER_CLOSE_MS: '100',
    LOG_LEVEL: 'silent',
    // Tests drive many requests as one subject from one address: limits are tested where meant.
    RATE_LIMIT_CALLER_MAX: String(rateLimitMax),
    RATE_LIMIT_ADDRESS_MAX: String(rateLimitMax),
    ...extra,
  };
}

/** A runtime and an app (driven with `app.inject`) on a fresh clone of the migrated template. */
export async function startTestService(
  options: {
    env?: Record<string, string>;
    logDestination?: DestinationStream;
    /** The level the captured log is written at (default `info`, the service's default). */
    logLevel?: LogLevel;
    db?: TestDatabase;
    stellar?: StellarEndpoints;
  } = {},
): Promise<TestService> {
  const db = options.db ?? (await createTestDatabase());
  const config = loadConfig(await testEnv(db, options.env));
  const logger = createLogger(
    options.logDestination ? (options.logLevel ?? 'info') : 'silent',
    options.logDestination,
  );
  const runtime = await openRuntime(config, logger, { migrate: false, applicationName: 'settledesk-test' });
  const domains = createDomains(runtime, options.stellar);
  const app = await buildApp(runtime, domains);
  return {
    db,
    runtime,
    domains,
    app,
    token: (role, subject = `${role}-user`) =>
      issueToken(runtime.keyring, { subject, role, ttlSeconds: 300 }),
    close: async () => {
      await app.close();
      await runtime.close();
      if (options.db === undefined) await db.drop();
    },
  };
}
