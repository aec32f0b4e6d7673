import { fileURLToPath } from 'node:url';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import Postgrator from 'postgrator';
import type { Logger } from '../logging.ts';
import { primaryHostUrl } from './multi-host.ts';
import type { Sql } from './types.ts';

const migrationsGlob = fileURLToPath(new URL('../../../migrations/*.sql', import.meta.url));
/**
 * Arbitrary but fixed: every settledesk migrator takes this advisory lock, so concurrent starts
 * queue behind each other and each migration is applied exactly once.
 */
const migrationLockKey = 7_340_001;

export type MigrationResult = { applied: string[]; version: number };

/**
 * Applies the numbered SQL files in `migrations/` (forward only) and graphile-worker's own schema,
 * under one session advisory lock held on a reserved connection.
 */
export async function migrate(sql: Sql, connectionString: string, logger: Logger): Promise<MigrationResult> {
  const connection = await sql.reserve();
  try {
    await connection`select pg_advisory_lock(${migrationLockKey})`;
    try {
      const postgrator = new Postgrator({
        migrationPattern: migrationsGlob,
        driver: 'pg',
        schemaTable: 'schema_migrations',
        validateChecksums: true,
        execQuery: async (query) => ({ rows: await connection.unsafe(query) }),
        // Each file runs in one transaction: a failed migration leaves nothing half-applied.
        execSqlScript: async (script) => {
          await connection.unsafe(`begin;\n${script}\n;commit;`).catch(async (error: unknown) => {
            await connection.unsafe('rollback');
            throw error;
          });
        },
      });
      const applied = await postgrator.migrate();
      const version = Number(await postgrator.getDatabaseVersion());
      await runWorkerMigrations({
        connectionString: await primaryHostUrl(connectionString),
        logger: undefined,
      });
      for (const migration of applied) logger.info({ migration: migration.name }, 'migration applied');
      return { applied: applied.map((migration) => migration.filename), version };
    } finally {
      await connection`select pg_advisory_unlock(${migrationLockKey})`;
    }
  } finally {
    connection.release();
  }
}
