import { createHash, randomUUID } from 'node:crypto';
import { Counter } from 'prom-client';
import { canonicalJson } from '../approvals/canonical.ts';
import { assert } from '../platform/assert.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql, Tx } from '../platform/db/types.ts';
import { DatabaseUnavailableError, DomainError, problemFor } from '../platform/errors.ts';
import { registry } from '../platform/metrics.ts';

export const idempotencyOutcomes = [
  'reserved',
  'replayed',
  'mismatch',
  'in_flight',
  'reserve_error',
  'finalize_error',
] as const;
export const idempotencyEvents = new Counter({
  name: 'idempotency_events_total',
  help: 'Idempotency-Key handling by outcome; reserve_error and finalize_error mean keys could not be stored or finished.',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
for (const outcome of idempotencyOutcomes) idempotencyEvents.inc({ outcome }, 0);

export const idempotencyKeyLengthMax = 255;
/**
 * A reservation older than this belongs to a request that died before committing: its money write
 * and its stored response commit together, so nothing moved, and the key may be taken over.
 */
export const inFlightLeaseSeconds = 60;

export type StoredResponse = { status: number; body: unknown };
/** What is sent and stored: the body serialized once, so replays are byte-identical. */
export type SentResponse = { status: number; body: string };
export type KeyScope = { caller: string; key: string; fingerprint: string };

/**
 * What a key is bound to: the method, the concrete path and the canonical body. The path is the
 * route template with its decoded parameters put back, so `/v1/payouts/A/resolve` and
 * `/v1/payouts/B/resolve` differ while two spellings of one id do not; a route without parameters
 * keeps the fingerprint it always had, so keys stored before this change still replay.
 */
export function fingerprint(
  method: string,
  route: string,
  params: Readonly<Record<string, string>>,
  body: unknown,
): string {
  return createHash('sha256')
    .update(`${method} ${concretePath(route, params)} ${canonicalJson(body)}`)
    .digest('hex');
}

/** `/v1/payouts/:id/resolve` with `{ id: 'B' }` is `/v1/payouts/B/resolve`; `*` takes `params['*']`. */
export function concretePath(route: string, params: Readonly<Record<string, string>>): string {
  return route.replace(/:([A-Za-z0-9_]+)|\*/g, (segment, name: string | undefined) => {
    const value = params[name ?? '*'];
    assert(value !== undefined, `route ${route} has no value for ${segment}`);
    return encodeURIComponent(value);
  });
}

type KeyRow = {
  fingerprint: string;
  state: 'in_flight' | 'completed';
  statusCode: number | null;
  responseBody: string | null;
};

/** The reservation a request holds while it runs; only its holder may finish or release the key. */
type Lease = { scope: KeyScope; lease: string };

async function insertReservation(db: Executor, scope: KeyScope, lease: string): Promise<boolean> {
  const rows = await db`
    insert into idempotency_keys (caller, key, fingerprint, state, lease)
    values (${scope.caller}::text, ${scope.key}::text, ${scope.fingerprint}::text, 'in_flight', ${lease}::uuid)
    on conflict (caller, key) do nothing
    returning key`;
  return rows.length === 1;
}

async function selectKey(db: Executor, scope: KeyScope): Promise<KeyRow | undefined> {
  const [row] = await db<KeyRow[]>`
    select fingerprint, state, status_code as "statusCode", response_body as "responseBody"
    from idempotency_keys where caller = ${scope.caller}::text and key = ${scope.key}::text`;
  return row;
}

async function updateTakeOverExpired(db: Executor, scope: KeyScope, lease: string): Promise<boolean> {
  const rows = await db`
    update idempotency_keys set reserved_at = now(), lease = ${lease}::uuid
    where caller = ${scope.caller}::text and key = ${scope.key}::text and state = 'in_flight'
      and fingerprint = ${scope.fingerprint}::text
      and reserved_at < now() - make_interval(secs => ${inFlightLeaseSeconds}::int)
    returning key`;
  return rows.length === 1;
}

/**
 * Takes over a reservation whose holder this process knows to be over (see `Unreleased`): only
 * while its lease is one of `dead`, so a reservation taken over or completed meanwhile stays.
 */
async function updateTakeOverUnreleased(
  db: Executor,
  scope: KeyScope,
  dead: readonly string[],
  lease: string,
): Promise<boolean> {
  const rows = await db`
    update idempotency_keys set reserved_at = now(), lease = ${lease}::uuid
    where caller = ${scope.caller}::text and key = ${scope.key}::text and state = 'in_flight'
      and fingerprint = ${scope.fingerprint}::text and lease = any(${dead}::uuid[])
    returning key`;
  return rows.length === 1;
}

/** Completes the key only while `held` is still its lease; false when it was taken over. */
async function updateComplete(db: Executor, held: Lease, response: SentResponse): Promise<boolean> {
  const rows = await db`
    update idempotency_keys
    set state = 'completed', status_code = ${response.status}::int, response_body = ${response.body}::text,
        completed_at = now()
    where caller = ${held.scope.caller}::text and key = ${held.scope.key}::text and state = 'in_flight'
      and lease = ${held.lease}::uuid
    returning key`;
  return rows.length === 1;
}

async function deleteReservation(db: Executor, held: Lease): Promise<void> {
  await db`
    delete from idempotency_keys
    where caller = ${held.scope.caller}::text and key = ${held.scope.key}::text and state = 'in_flight'
      and lease = ${held.lease}::uuid`;
}

export async function deleteKeysOlderThan(db: Executor, seconds: number, limit: number): Promise<number> {
  const result = await db`
    delete from idempotency_keys where ctid = any(array(
      select ctid from idempotency_keys where reserved_at < now() - make_interval(secs => ${seconds}::int) limit ${limit}::int))`;
  return result.count;
}

/** Keys remembered by `Unreleased`; past it the oldest is forgotten and waits out its lease. */
export const unreleasedKeysMax = 1_000;
/** Leases remembered per key: one per try that failed while the database was gone. */
const unreleasedLeasesPerKeyMax = 8;

/**
 * Reservations this process could not release because the database was gone (a failover, a lost
 * or refused connection), and reservations whose insert lost its answer (it may have committed).
 * Their request is over and nothing of it committed: the money write and the completion commit
 * together, and a late commit of that transaction is serialized by the row lock, so the takeover
 * then finds the key completed and replays it. So the client's retry that reaches this process
 * takes the reservation over at once instead of answering 409 until `inFlightLeaseSeconds` have
 * passed; a retry that reaches another instance still waits out the lease.
 */
class Unreleased {
  readonly #leases = new Map<string, string[]>();

  remember(held: Lease): void {
    const id = Unreleased.#id(held.scope);
    const leases = this.#leases.get(id) ?? [];
    // The first is the one most likely stored: later tries of the key rarely reach the database.
    if (leases.length < unreleasedLeasesPerKeyMax) leases.push(held.lease);
    this.#leases.delete(id);
    this.#leases.set(id, leases);
    for (const oldest of this.#leases.keys()) {
      if (this.#leases.size <= unreleasedKeysMax) break;
      this.#leases.delete(oldest);
    }
  }

  leases(scope: KeyScope): readonly string[] {
    return this.#leases.get(Unreleased.#id(scope)) ?? [];
  }

  forget(scope: KeyScope): void {
    this.#leases.delete(Unreleased.#id(scope));
  }

  static #id(scope: KeyScope): string {
    return `${scope.caller}\n${scope.key}`;
  }
}

const unreleased = new Unreleased();

/**
 * Inserts the reservation; when its answer is lost, remembers the lease it may have stored. With
 * no writable host the insert was never sent: there is nothing to remember.
 */
async function insertRemembered(db: Executor, scope: KeyScope, lease: string): Promise<boolean> {
  try {
    return await insertReservation(db, scope, lease);
  } catch (error) {
    if (!(error instanceof DatabaseUnavailableError)) unreleased.remember({ scope, lease });
    throw error;
  }
}

/** Takes over the key when this process holds one of its reservations unreleased. */
async function takeOverUnreleased(db: Executor, scope: KeyScope, lease: string): Promise<boolean> {
  const dead = unreleased.leases(scope);
  return dead.length > 0 && (await updateTakeOverUnreleased(db, scope, dead, lease));
}

/**
 * A reservation can vanish between the failed insert and the read (its holder released it after a
 * 503); the insert is then simply tried again, a bounded number of times.
 */
const reserveAttemptsMax = 3;

/** Reserves the key, or returns the stored response to replay; throws 422/409 problems otherwise. */
async function reserve(sql: Sql, scope: KeyScope): Promise<Lease | { replay: SentResponse }> {
  try {
    const reserved = await reserveOnce(sql, scope);
    unreleased.forget(scope);
    return reserved;
  } catch (error) {
    if (error instanceof DomainError) {
      unreleased.forget(scope);
      if (error.type === 'idempotency/in-flight') idempotencyEvents.inc({ outcome: 'in_flight' });
    } else {
      idempotencyEvents.inc({ outcome: 'reserve_error' });
    }
    throw error;
  }
}

async function reserveOnce(sql: Sql, scope: KeyScope): Promise<Lease | { replay: SentResponse }> {
  for (let attempt = 0; attempt < reserveAttemptsMax; attempt += 1) {
    const lease = randomUUID();
    if (await insertRemembered(sql, scope, lease)) {
      idempotencyEvents.inc({ outcome: 'reserved' });
      return { scope, lease };
    }
    const existing = await selectKey(sql, scope);
    if (existing === undefined) continue;
    if (existing.fingerprint !== scope.fingerprint) {
      idempotencyEvents.inc({ outcome: 'mismatch' });
      throw new DomainError(
        'idempotency/key-reused',
        'this Idempotency-Key was used with a different request',
      );
    }
    if (existing.state === 'completed') {
      idempotencyEvents.inc({ outcome: 'replayed' });
      return { replay: { status: existing.statusCode ?? 500, body: existing.responseBody ?? '' } };
    }
    if ((await takeOverUnreleased(sql, scope, lease)) || (await updateTakeOverExpired(sql, scope, lease))) {
      idempotencyEvents.inc({ outcome: 'reserved' });
      return { scope, lease };
    }
    throw inFlight();
  }
  // Reserved and released again each time we looked: another request is busy with this key.
  throw inFlight();
}

function inFlight(): DomainError {
  return new DomainError(
    'idempotency/in-flight',
    'a request with this Idempotency-Key is still being processed',
  );
}

/** Raised inside the money transaction when the lease was lost: the transaction must roll back. */
class LeaseLost extends Error {
  override name = 'LeaseLost';
}

/** Runs `complete`, counting a failure to store the outcome as `finalize_error`. */
async function finalize<T>(complete: () => Promise<T>): Promise<T> {
  try {
    return await complete();
  } catch (error) {
    idempotencyEvents.inc({ outcome: 'finalize_error' });
    throw error;
  }
}

/**
 * Runs a money-moving request at most once per (caller, key). The money write and the stored
 * response commit in one transaction, so a crash can leave neither money moved without a stored
 * response nor a response without the money. The completion is guarded by the request's lease:
 * a request that was taken over after `inFlightLeaseSeconds` rolls its money write back instead of
 * committing it a second time. A refusal (a 4xx domain error) is stored too, so a retry gets the
 * same answer; a temporary refusal (503, e.g. read_only, a lost database) or an unexpected failure
 * releases the key so the client may retry it later (when the database is gone the release waits
 * for the retry: see `Unreleased`).
 */
export async function runIdempotent(
  sql: Sql,
  scope: KeyScope,
  work: (tx: Tx) => Promise<StoredResponse>,
  refusalBody: (error: DomainError) => unknown,
): Promise<SentResponse & { replayed: boolean }> {
  const reserved = await reserve(sql, scope);
  if ('replay' in reserved) return { ...reserved.replay, replayed: true };
  try {
    const response = await withTransaction(sql, async (tx) => {
      const result = await work(tx);
      const sent = { status: result.status, body: JSON.stringify(result.body) };
      if (!(await finalize(() => updateComplete(tx, reserved, sent)))) throw new LeaseLost();
      return sent;
    });
    return { ...response, replayed: false };
  } catch (error) {
    if (error instanceof LeaseLost) throw leaseLost();
    if (error instanceof DomainError && error.status < 500) {
      const refusal = { status: error.status, body: JSON.stringify(refusalBody(error)) };
      if (!(await finalize(() => updateComplete(sql, reserved, refusal)))) throw leaseLost();
      return { ...refusal, replayed: false };
    }
    // The database may be gone (that may be why the work failed): then the next try of this key
    // here takes the reservation over (`Unreleased`), and elsewhere after the lease.
    await finalize(() => deleteReservation(sql, reserved)).catch(() => unreleased.remember(reserved));
    throw error;
  }
}

/** The request outlived its lease and another took the key over: nothing of this one committed. */
function leaseLost(): DomainError {
  idempotencyEvents.inc({ outcome: 'finalize_error' });
  return inFlight();
}

export function problemBody(error: DomainError, instance: string, requestId: string): unknown {
  return { ...problemFor(error.type, error.message, { ...error.extensions }), instance, requestId };
}
