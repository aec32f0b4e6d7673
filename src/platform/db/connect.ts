import postgres from 'postgres';
import type { Logger } from '../logging.ts';
import type { Sql } from './types.ts';

export type ConnectOptions = {
  url: string;
  poolMax: number;
  logger: Logger;
  applicationName?: string;
};

/** Seconds: how long a checkout may wait for a server before the caller sees an error. */
const connectTimeoutSeconds = 10;
const idleTimeoutSeconds = 30;

/**
 * Opens a pool. Multi-host URLs with `target_session_attrs=read-write` are handled by
 * postgres.js itself: after a failover, new connections find the promoted primary, so the
 * service recovers without a restart.
 */
export function connect(options: ConnectOptions): Sql {
  return postgres(options.url, {
    max: options.poolMax,
    connect_timeout: connectTimeoutSeconds,
    idle_timeout: idleTimeoutSeconds,
    types: { bigint: postgres.BigInt },
    connection: { application_name: options.applicationName ?? 'settledesk' },
    onnotice: (notice) => options.logger.debug({ notice: notice.message }, 'postgres notice'),
  });
}

/** A connection string with a different database name; keeps hosts, credentials and parameters. */
export function withDatabase(url: string, database: string): string {
  const match = /^(postgres(?:ql)?:\/\/[^/?#]+)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  if (!match) throw new Error('not a postgres URL');
  return `${match[1]}/${encodeURIComponent(database)}${match[3] ?? ''}`;
}
