import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { connect, withDatabase } from '../../src/platform/db/connect.ts';
import type { Sql } from '../../src/platform/db/types.ts';
import { createLogger } from '../../src/platform/logging.ts';

export type TestDatabase = { name: string; url: string; sql: Sql; drop(): Promise<void> };

const logger = createLogger('silent');

function adminPool(): Sql {
  return connect({ url: inject('databaseAdminUrl'), poolMax: 1, logger });
}

/** A fresh database for one test file: a clone of the migrated template, dropped afterwards. */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = `settledesk_t_${inject('runId')}_${randomBytes(4).toString('hex')}`;
  const admin = adminPool();
  try {
    const template = options.empty ? 'template0' : inject('templateDatabase');
    await admin.unsafe(`create database "${name}" template "${template}"`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(inject('databaseAdminUrl'), name);
  const sql = connect({ url, poolMax: 10, logger });
  return {
    name,
    url,
    sql,
    drop: async () => {
      await sql.end({ timeout: 5 });
      const dropper = adminPool();
      try {
        await dropper.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end();
      }
    },
  };
}
