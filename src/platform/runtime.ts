import { join } from 'node:path';
import { ProviderSecrets } from '../deposits/provider-secrets.ts';
import { SuspendedUsers } from './auth/access.ts';
import { ApiKeys } from './auth/api-keys.ts';
import { loadEncryptionKey } from './auth/crypto.ts';
import { ensureCurrentKey, Keyring } from './auth/keyring.ts';
import type { Config } from './config.ts';
import { connect } from './db/connect.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './db/embedded.ts';
import { type MigrationResult, migrate } from './db/migrate.ts';
import { observeSql } from './db/observe.ts';
import { serverFigures } from './db/server-figures.ts';
import type { Sql } from './db/types.ts';
import { HealthRegistry } from './health.ts';
import type { Logger } from './logging.ts';
import type { RedisConnection } from './redis.ts';

/** What every entry point (server, worker, CLI command) shares: config, logger, database, keyring. */
export type Runtime = {
  config: Config;
  logger: Logger;
  sql: Sql;
  databaseUrl: string;
  keyring: Keyring;
  users: SuspendedUsers;
  apiKeys: ApiKeys;
  /** Provider webhook secrets from the database, reloaded with the keys on every instance. */
  providerSecrets: ProviderSecrets;
  health: HealthRegistry;
  /** The Redis connection when REDIS_URL is set (readiness check, rate-limit counters). */
  redis: RedisConnection | undefined;
  /** What this open applied, when it was asked to migrate. */
  migration: MigrationResult | undefined;
  close(): Promise<void>;
};

export type RuntimeOptions = { migrate: boolean; applicationName: string };

/**
 * How long closing the pool waits for queries still running. It closes last, after the API has
 * drained and the workers have stopped, so nothing of ours should be running by then. It is short
 * because postgres.js 3.4.9 keeps a query whose connection died with its server as the
 * connection's current one, and `end()` waits for it until this timeout: after the db-failover
 * drill every stop spent the whole timeout there in 4 of 7 runs (5 s then, of the 8 s
 * SHUTDOWN_TIMEOUT_MS), with no socket left open.
 */
const poolCloseTimeoutSeconds = 1;

export async function openRuntime(config: Config, logger: Logger, options: RuntimeOptions): Promise<Runtime> {
  let embedded: EmbeddedDatabase | undefined;
  if (config.databaseUrl === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, logger });
  }
  const databaseUrl = config.databaseUrl ?? embedded?.url ?? '';
  const pool = observeSql(
    connect({
      url: databaseUrl,
      poolMax: config.databasePoolMax,
      logger,
      applicationName: options.applicationName,
    }),
    'main',
    config.databasePoolMax,
  );
  const sql = pool.sql;
  serverFigures.from(sql);
  let redis: RedisConnection | undefined;
  const close = async () => {
    pool.unregister();
    redis?.close();
    await sql.end({ timeout: poolCloseTimeoutSeconds });
    await embedded?.stop();
  };
  try {
    const migration = options.migrate ? await migrate(sql, databaseUrl, logger) : undefined;
    const keyring = new Keyring(
      await loadEncryptionKey(config.keyringKeyBase64, join(config.dataDir, 'keyring.key')),
      config.keyringPreviousKeysBase64.map((key) => Buffer.from(key, 'base64')),
    );
    await ensureCurrentKey(sql, keyring);
    const users = new SuspendedUsers();
    await users.reload(sql);
    const apiKeys = new ApiKeys(sql, logger);
    await apiKeys.reload(sql);
    const providerSecrets = new ProviderSecrets(keyring);
    await providerSecrets.reload(sql);
    const health = new HealthRegistry();
    health.register({
      name: 'postgresql',
      critical: true,
      check: async () => {
        await sql`select 1`;
        return { status: 'ok' };
      },
    });
    if (config.redisUrl !== undefined) {
      // Loaded only when configured: importing ioredis costs 170-300 ms, paid by every CLI command
      // (and runbook cells run many) if it were imported unconditionally.
      const { connectRedis } = await import('./redis.ts');
      redis = connectRedis(config.redisUrl, logger);
      health.register(redis.check);
    }
    return {
      config,
      logger,
      sql,
      databaseUrl,
      keyring,
      users,
      apiKeys,
      providerSecrets,
      health,
      redis,
      migration,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
