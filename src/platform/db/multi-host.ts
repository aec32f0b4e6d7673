import net from 'node:net';
import { Duplex } from 'node:stream';
import pg from 'pg';
import postgres from 'postgres';
import { DatabaseUnavailableError, OperatingError } from '../errors.ts';

/**
 * Multi-host connection strings (`postgres://u:p@db-a:5432,db-b:5432/db?target_session_attrs=read-write`)
 * for the two clients settledesk uses: postgres.js (`primarySocket`) and pg under graphile-worker
 * (`primaryClient`). Drilled by src/drills/db-failover.ts.
 *
 * postgres.js 3.4.9 does not get read-write right, measured here against a primary and a hot
 * standby: (1) it takes read-write to mean "default_transaction_read_only is off", which a hot
 * standby reports too, so with the standby listed first every write went to it and failed (25006);
 * (2) when no host qualifies it retries the hosts with no pause and no bound: a query waits
 * forever, and a 10-connection pool opened over 300 connections a second on the standby,
 * saturating a 2-core machine during a failover (the drill did not get past detection). So for
 * read-write (and primary) the pool gets a socket from `primarySocket`, which picks the host
 * itself, the way libpq does (not in recovery, default_transaction_read_only off), and fails the
 * connection at once when no host is writable (`DatabaseUnavailableError`): the caller's request
 * answers 503 with Retry-After and its client retries.
 */

export type HostTarget = {
  host: string;
  port: number;
  /** The multi-host URL with only this host. */
  url: string;
};

const urlPattern = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/;
const hostPattern = /^(?:\[([^\]]+)\]|([^:]*))(?::(\d+))?$/;
const portDefault = 5432;
const probeTimeoutSeconds = 5;
/** After a round finds no writable host, connections fail without probing for this long. */
const noPrimaryHoldMs = 500;

/**
 * The hosts of a multi-host URL asking for a writable session, each as a single-host URL without
 * `target_session_attrs`; undefined for a single host or any other `target_session_attrs`.
 */
export function writableHostTargets(url: string): HostTarget[] | undefined {
  const parts = urlPattern.exec(url);
  if (!parts) return undefined;
  const hosts = (parts[3] ?? '').split(',');
  const params = new URLSearchParams(parts[5] ?? '');
  const attrs = params.get('target_session_attrs');
  if (hosts.length < 2 || (attrs !== 'read-write' && attrs !== 'primary')) return undefined;
  params.delete('target_session_attrs');
  const query = params.size > 0 ? `?${params}` : '';
  const credentials = parts[2] === undefined ? '' : `${parts[2]}@`;
  return hosts.map((entry) => {
    const match = hostPattern.exec(entry);
    return {
      host: match?.[1] ?? match?.[2] ?? entry,
      port: match?.[3] === undefined ? portDefault : Number(match[3]),
      url: `${parts[1]}${credentials}${entry}${parts[4] ?? ''}${query}`,
    };
  });
}

/**
 * Finds the writable host, starting with the last one that was; concurrent callers share one
 * probe round, and after a round finds none, calls fail at once for `noPrimaryHoldMs`.
 */
export function primaryFinder(targets: readonly HostTarget[]): () => Promise<HostTarget> {
  let preferred = 0;
  let noPrimaryUntil = 0;
  let lastFailure = '';
  let round: Promise<HostTarget> | undefined;
  const findPrimary = async (): Promise<HostTarget> => {
    if (performance.now() < noPrimaryUntil) throw new DatabaseUnavailableError(lastFailure);
    const reasons: string[] = [];
    for (let offset = 0; offset < targets.length; offset += 1) {
      const index = (preferred + offset) % targets.length;
      const target = targets[index]!;
      const refusal = await writableRefusal(target.url);
      if (refusal === undefined) {
        preferred = index;
        return target;
      }
      reasons.push(`${target.host}:${target.port} ${refusal}`);
    }
    noPrimaryUntil = performance.now() + noPrimaryHoldMs;
    lastFailure = `no host accepts writes (${reasons.join('; ')})`;
    throw new DatabaseUnavailableError(lastFailure);
  };
  return () => {
    round ??= findPrimary().finally(() => {
      round = undefined;
    });
    return round;
  };
}

/** A postgres.js `socket` factory: a TCP socket to the writable host (see `primaryFinder`). */
export function primarySocket(targets: readonly HostTarget[]): () => Promise<net.Socket | Duplex> {
  const findPrimary = primaryFinder(targets);
  return async () => {
    try {
      return await openSocket(await findPrimary());
    } catch (error) {
      return failedSocket(error instanceof Error ? error : new Error(String(error)));
    }
  };
}

/**
 * When the factory throws, postgres.js never closes that connection, so its pool slot stays
 * "connecting" for good (12 failures with `max: 3` hung the pool). A stream that fails instead
 * takes postgres.js's own error path: the waiting query fails with `error` and the slot is freed.
 * It fails on the first write, the startup message: failing before it would leave that message
 * in postgres.js's write buffer, to be sent ahead of the next connection's own (seen as
 * "expected SASL response" and connect timeouts once a primary was back).
 */
function failedSocket(error: Error): Duplex {
  return new Duplex({
    read: () => {},
    write: (_chunk, _encoding, callback) => callback(error),
  });
}

/**
 * postgres.js waits `backoff(retries)` seconds before a connection's next attempt, growing to 20 s
 * over a few hundred failures; during a failover that would delay the first connection to the
 * promoted primary. `primarySocket` already bounds probing (noPrimaryHoldMs), and each failed
 * attempt fails the one query that was waiting for it, so attempts cannot spin without work.
 */
export const multiHostBackoff = (): number => 0;

/** Why a host is not a writable primary, or undefined when it is. */
async function writableRefusal(url: string): Promise<string | undefined> {
  const probe = postgres(url, { max: 1, connect_timeout: probeTimeoutSeconds, onnotice: () => {} });
  try {
    const [row] = await probe<{ inRecovery: boolean; readOnly: string }[]>`
      select pg_is_in_recovery() as "inRecovery", current_setting('default_transaction_read_only') as "readOnly"`;
    if (row?.inRecovery !== false) return 'is a standby';
    return row.readOnly === 'off' ? undefined : 'is read-only';
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : undefined;
    const why = code ?? (error instanceof Error ? error.message : 'error');
    // A PostgreSQL error (bad password, too many connections) means the host answered.
    return error instanceof postgres.PostgresError ? `refused us (${why})` : `did not answer (${why})`;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

function openSocket(target: HostTarget): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new DatabaseUnavailableError(
          `${target.host}:${target.port} did not accept a connection in ${probeTimeoutSeconds} s`,
        ),
      );
    }, probeTimeoutSeconds * 1000);
    const failed = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    socket.once('error', failed);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', failed);
      // postgres.js names the TLS server (SNI, certificate check) and its errors after these.
      resolve(deferClose(Object.assign(socket, { host: target.host, port: target.port })));
    });
  });
}

/** How long the dead socket stays in place after its connection failed; see `deferClose`. */
const closeDeferMs = 100;

/**
 * postgres.js 3.4.9 crashes the process when a connection dies inside `sql.begin`
 * (porsager/postgres#1208, fix unreleased): on 'close' it drops its socket and rejects the
 * transaction's queries, then its own ROLLBACK is written to the dropped socket ("Cannot read
 * properties of null (reading 'write')" from a setImmediate: uncatchable). Reproduced here by
 * killing the primary under transfers. So the queries are failed first, with an 'error' (unless
 * the socket already emitted one), and 'close' reaches postgres.js a little later, without
 * `hadError` so that whatever was written meanwhile (the ROLLBACK: a no-op on the destroyed
 * socket) is failed too. TLS connections (postgres.js wraps this socket) are not covered.
 */
function deferClose(socket: net.Socket): net.Socket {
  const emit = socket.emit.bind(socket);
  let failed = false;
  socket.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'error') failed = true;
    if (event !== 'close') return emit(event, ...args);
    if (!failed && socket.listenerCount('error') > 0) {
      failed = true;
      emit(
        'error',
        Object.assign(new Error('the database server closed the connection'), { code: 'CONNECTION_CLOSED' }),
      );
    }
    setTimeout(() => emit('close', false), closeDeferMs);
    return true;
  }) as typeof socket.emit;
  return socket;
}

/**
 * A pg connection that found no writable host, or lost the host it picked while connecting. Its
 * `code` is SQLSTATE 57P03 (cannot_connect_now), which graphile-worker retries with backoff (3 s,
 * growing to 120 s) when it completes or fails a job; with any other error there it gives the job
 * up (src/platform/jobs.ts).
 */
export class CannotConnectNowError extends OperatingError {
  override name = 'CannotConnectNowError';
  readonly code = '57P03';
}

type ConnectCallback = (error: Error | null, client?: pg.Client) => void;

/**
 * A pg `Client` whose queries fail with `CannotConnectNowError` when their connection broke
 * (`unavailableWhenBroken`): the job worker's clients on a single-host URL, and the base of
 * `primaryClient`'s.
 */
export class UnavailableWhenBrokenClient extends pg.Client {}
UnavailableWhenBrokenClient.prototype.query = unavailableWhenBroken(pg.Client.prototype.query);

/**
 * A pg `Client` class for a multi-host read-write URL (pg takes one host and refuses a multi-host
 * URL): each new connection first finds the writable host, as postgres.js's do (`primarySocket`),
 * so a pool built with it (`Pool({ Client })`) opens its next connections on the promoted primary
 * after a failover. A connect error that is not PostgreSQL's own answer becomes
 * `CannotConnectNowError`, also given to `failed`; so does a query's error when its connection
 * broke (`brokenConnection`), which the pool's 'error' event already reports.
 */
export function primaryClient(
  targets: readonly HostTarget[],
  failed: (error: CannotConnectNowError) => void,
): typeof pg.Client {
  const findPrimary = primaryFinder(targets);
  class PrimaryClient extends UnavailableWhenBrokenClient {
    override connect(): Promise<pg.Client>;
    override connect(callback: ConnectCallback): void;
    override connect(callback?: ConnectCallback): Promise<pg.Client> | undefined {
      const connected = findPrimary().then(async (target) => {
        this.host = target.host;
        this.port = target.port;
        await super.connect();
        return this;
      });
      const answered = connected.catch((error: unknown) => {
        if (error instanceof pg.DatabaseError) throw error;
        const unavailable = new CannotConnectNowError(
          error instanceof Error ? error.message : String(error),
          {
            cause: error,
          },
        );
        failed(unavailable);
        throw unavailable;
      });
      if (callback === undefined) return answered;
      answered.then(
        (client) => callback(null, client),
        (error: Error) => callback(error),
      );
      return undefined;
    }
  }
  return PrimaryClient;
}

/**
 * How pg 8 fails a query whose connection broke, rather than PostgreSQL answering it: socket
 * errors, and its own messages for a connection that ended (`Connection terminated unexpectedly`)
 * or that an earlier error left unusable.
 */
const brokenConnectionCodes = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EHOSTUNREACH']);
const brokenConnectionMessage =
  /^Connection terminated|^Client has encountered a connection error|^Client was closed/;

/** Whether a pg error says the connection broke (no SQLSTATE: PostgreSQL did not answer). */
export function brokenConnection(error: unknown): error is Error {
  if (!(error instanceof Error) || error instanceof pg.DatabaseError) return false;
  const code = 'code' in error ? error.code : undefined;
  return (
    (typeof code === 'string' && brokenConnectionCodes.has(code)) ||
    brokenConnectionMessage.test(error.message)
  );
}

function unavailableIfBroken(error: unknown): unknown {
  return brokenConnection(error) ? new CannotConnectNowError(error.message, { cause: error }) : error;
}

/**
 * pg's `query` (promise and callback forms), with an error of a broken connection turned into
 * `CannotConnectNowError`. graphile-worker 0.18 stores a job's result (completeJob, failJob)
 * without awaiting it and retries only SQLSTATE-like codes (57P03 among them): without this, a
 * primary that dies while a result is being stored ends the process with an unhandled rejection.
 * Retrying is safe there: a completion deletes the job by id and a failure updates it only while
 * this worker still holds its lock, so a retry after the first try committed changes nothing.
 * Queries given as a `Submittable` (cursors, streams) report their errors themselves, unchanged.
 */
function unavailableWhenBroken(query: pg.Client['query']): pg.Client['query'] {
  function guarded(this: pg.Client, ...args: unknown[]): unknown {
    const callback = args.at(-1);
    if (typeof callback === 'function') {
      args[args.length - 1] = (error: unknown, result: unknown) =>
        Reflect.apply(callback, undefined, [unavailableIfBroken(error), result]);
      return Reflect.apply(query, this, args);
    }
    const result: unknown = Reflect.apply(query, this, args);
    if (!(result instanceof Promise)) return result;
    return result.catch((error: unknown) => {
      throw unavailableIfBroken(error);
    });
  }
  return guarded as pg.Client['query'];
}

/**
 * For one-off pg clients (migrations): the single-host URL of the host that is writable now.
 */
export async function primaryHostUrl(url: string): Promise<string> {
  const targets = writableHostTargets(url);
  if (targets === undefined) return url;
  const reasons: string[] = [];
  for (const target of targets) {
    const refusal = await writableRefusal(target.url);
    if (refusal === undefined) return target.url;
    reasons.push(`${target.host}:${target.port} ${refusal}`);
  }
  throw new DatabaseUnavailableError(`no host of the database URL accepts writes (${reasons.join('; ')})`);
}
