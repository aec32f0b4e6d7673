import { createHash } from 'node:crypto';
import { Counter } from 'prom-client';
import { canonicalJson } from '../approvals/canonical.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql, Tx } from '../platform/db/types.ts';
import { DomainError, problemFor } from '../platform/errors.ts';
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

export function fingerprint(method: string, route: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${route} ${canonicalJson(body)}`)
    .digest('hex');
}

type KeyRow = {
  fingerprint: string;
  state: 'in_flight' | 'completed';
  statusCode: number | null;
  responseBody: string | null;
};

async function insertReservation(db: Executor, scope: KeyScope): Promise<boolean> {
  const rows = await db`
    insert into idempotency_keys (caller, key, fingerprint, state)
    values (${scope.caller}::text, ${scope.key}::text, ${scope.fingerprint}::text, 'in_flight')
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

async function updateTakeOverExpired(db: Executor, scope: KeyScope): Promise<boolean> {
  const rows = await db`
    update idempotency_keys set reserved_at = now()
    where caller = ${scope.caller}::text and key = ${scope.key}::text and state = 'in_flight'
      and fingerprint = ${scope.fingerprint}::text
      and reserved_at < now() - make_interval(secs => ${inFlightLeaseSeconds}::int)
    returning key`;
  return rows.length === 1;
}

async function updateComplete(db: Executor, scope: KeyScope, response: SentResponse): Promise<void> {
  await db`
    update idempotency_keys
    set state = 'completed', status_code = ${response.status}::int, response_body = ${response.body}::text,
        completed_at = now()
    where caller = ${scope.caller}::text and key = ${scope.key}::text`;
}

async function deleteReservation(db: Executor, scope: KeyScope): Promise<void> {
  await db`delete from idempotency_keys where caller = ${scope.caller}::text and key = ${scope.key}::text and state = 'in_flight'`;
}

export async function deleteKeysOlderThan(db: Executor, seconds: number, limit: number): Promise<number> {
  const result = await db`
    delete from idempotency_keys where ctid = any(array(
      select ctid from idempotency_keys where reserved_at < now() - make_interval(secs => ${seconds}::int) limit ${limit}::int))`;
  return result.count;
}

/** Reserves the key, or returns the stored response to replay; throws 422/409 problems otherwise. */
async function reserve(sql: Sql, scope: KeyScope): Promise<SentResponse | undefined> {
  try {
    if (await insertReservation(sql, scope)) {
      idempotencyEvents.inc({ outcome: 'reserved' });
      return undefined;
    }
    const existing = await selectKey(sql, scope);
    if (existing === undefined) return reserve(sql, scope);
    if (existing.fingerprint !== scope.fingerprint) {
      idempotencyEvents.inc({ outcome: 'mismatch' });
      throw new DomainError(
        'idempotency/key-reused',
        'this Idempotency-Key was used with a different request',
      );
    }
    if (existing.state === 'completed') {
      idempotencyEvents.inc({ outcome: 'replayed' });
      return { status: existing.statusCode ?? 500, body: existing.responseBody ?? '' };
    }
    if (await updateTakeOverExpired(sql, scope)) {
      idempotencyEvents.inc({ outcome: 'reserved' });
      return undefined;
    }
    idempotencyEvents.inc({ outcome: 'in_flight' });
    throw new DomainError(
      'idempotency/in-flight',
      'a request with this Idempotency-Key is still being processed',
    );
  } catch (error) {
    if (!(error instanceof DomainError)) idempotencyEvents.inc({ outcome: 'reserve_error' });
    throw error;
  }
}

/**
 * Runs a money-moving request at most once per (caller, key). The money write and the stored
 * response commit in one transaction, so a crash can leave neither money moved without a stored
 * response nor a response without the money. A refusal (a 4xx domain error) is stored too, so a
 * retry gets the same answer; a temporary refusal (503, e.g. read_only) or an unexpected failure
 * releases the key so the client may retry it later.
 */
export async function runIdempotent(
  sql: Sql,
  scope: KeyScope,
  work: (tx: Tx) => Promise<StoredResponse>,
  refusalBody: (error: DomainError) => unknown,
): Promise<SentResponse & { replayed: boolean }> {
  const stored = await reserve(sql, scope);
  if (stored) return { ...stored, replayed: true };
  try {
    const response = await withTransaction(sql, async (tx) => {
      const result = await work(tx);
      const sent = { status: result.status, body: JSON.stringify(result.body) };
      await updateComplete(tx, scope, sent);
      return sent;
    });
    return { ...response, replayed: false };
  } catch (error) {
    if (error instanceof DomainError && error.status < 500) {
      const refusal = { status: error.status, body: JSON.stringify(refusalBody(error)) };
      await updateComplete(sql, scope, refusal).catch((finalizeError: unknown) => {
        idempotencyEvents.inc({ outcome: 'finalize_error' });
        throw finalizeError;
      });
      return { ...refusal, replayed: false };
    }
    await deleteReservation(sql, scope).catch(() => idempotencyEvents.inc({ outcome: 'finalize_error' }));
    throw error;
  }
}

export function problemBody(error: DomainError, instance: string, requestId: string): unknown {
  return { ...problemFor(error.type, error.message, { ...error.extensions }), instance, requestId };
}
