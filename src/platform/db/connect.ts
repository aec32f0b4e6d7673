import postgres from 'postgres';
import { assert } from '../assert.ts';
import type { Logger } from '../logging.ts';
import { multiHostBackoff, primarySocket, writableHostTargets } from './multi-host.ts';
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
const pipelineUnbounded = Number.MAX_SAFE_INTEGER;

/**
 * Opens a pool. With a multi-host URL and `target_session_attrs=read-write`, each new connection
 * goes to the host that accepts writes now: after a failover, new connections find the promoted
 * primary, so the service recovers without a restart (docs/runbooks/db-failover.md).
 */
export function connect(options: ConnectOptions): Sql {
  const targets = writableHostTargets(options.url);
  const settings = {
    max: options.poolMax,
    connect_timeout: connectTimeoutSeconds,
    idle_timeout: idleTimeoutSeconds,
    types: { bigint: postgres.BigInt },
    // postgres.js 3.4.9 skips reserving a transaction's connection when its BEGIN is the query
    // that fills the pipeline (porsager/postgres#1189, #823): the transaction then runs unreserved
    // and other queries can land inside it (seen here as UNSAFE_TRANSACTION under 1,000 racing
    // transfers). With no practical pipeline limit the reservation always happens. Remove once
    // the upstream fix (#1218) is released.
    max_pipeline: pipelineUnbounded,
    connection: { application_name: options.applicationName ?? 'settledesk' },
    // A multi-host read-write URL: we pick the writable host (see multi-host.ts for why).
    ...(targets === undefined ? {} : { socket: primarySocket(targets), backoff: multiHostBackoff }),
    onnotice: (notice: postgres.Notice) =>
      options.logger.debug({ notice: notice.message }, 'postgres notice'),
  };
  return postgres(targets?.[0]?.url ?? options.url, settings);
}

/** A connection string with a different database name; keeps hosts, credentials and parameters. */
export function withDatabase(url: string, database: string): string {
  const match = /^(postgres(?:ql)?:\/\/[^/?#]+)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  assert(match, 'not a postgres URL');
  return `${match[1]}/${encodeURIComponent(database)}${match[3] ?? ''}`;
}
