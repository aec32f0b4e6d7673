import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { canonicalJson } from '../approvals/canonical.ts';
import { connect } from '../platform/db/connect.ts';
import { freePort } from '../platform/db/embedded.ts';
import { DatabaseUnavailableError, DomainError } from '../platform/errors.ts';
import { createLogger } from '../platform/logging.ts';
import { registry } from '../platform/metrics.ts';
import {
  concretePath,
  fingerprint,
  idempotencyEvents,
  inFlightLeaseSeconds,
  type KeyScope,
  runIdempotent,
} from './idempotency.ts';
import { idempotencyTasks, purgeTask } from './tasks.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table effects (n int)`;
});

afterAll(async () => {
  await db.drop();
});

const scope = (key: string, body: object = { a: 1 }): KeyScope => ({
  caller: 'svc',
  key,
  fingerprint: fingerprint('POST', '/x', {}, body),
});
const refusal = (error: DomainError) => ({ type: error.type });
const effect = async () => {
  await db.sql`insert into effects values (1)`;
  return { status: 201, body: { done: true } };
};

async function outcomeCount(outcome: string): Promise<number> {
  const metric = await idempotencyEvents.get();
  return metric.values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
}

/** `url` with a host nobody listens on in front of its own, asking for a writable session. */
function multiHost(url: string, deadPort: number): string {
  const parsed = new URL(url);
  const host = parsed.host;
  parsed.searchParams.set('target_session_attrs', 'read-write');
  return parsed.toString().replace(`@${host}/`, `@127.0.0.1:${deadPort},${host}/`);
}

async function effects(): Promise<number> {
  const [row] = await db.sql<{ count: number }[]>`select count(*)::int as count from effects`;
  return row?.count ?? 0;
}

describe('idempotency keys', () => {
  it('fingerprints the canonical body: key order does not matter, values do', () => {
    expect(fingerprint('POST', '/x', {}, { a: 1, b: 2 })).toBe(fingerprint('POST', '/x', {}, { b: 2, a: 1 }));
    expect(fingerprint('POST', '/x', {}, { a: 1 })).not.toBe(fingerprint('POST', '/x', {}, { a: 2 }));
    expect(fingerprint('POST', '/x', {}, { a: 1 })).not.toBe(fingerprint('POST', '/y', {}, { a: 1 }));
  });

  it('fingerprints a route without parameters exactly as before, so stored keys still replay', () => {
    const body = { amount: '1', to: 'b' };
    const stored = createHash('sha256')
      .update(`POST /v1/transfers ${canonicalJson(body)}`)
      .digest('hex');
    expect(fingerprint('POST', '/v1/transfers', {}, body)).toBe(stored);
    expect(concretePath('/v1/payouts/:id/resolve', { id: 'b' })).toBe('/v1/payouts/b/resolve');
    expect(fingerprint('POST', '/v1/payouts/:id/resolve', { id: 'a' }, {})).not.toBe(
      fingerprint('POST', '/v1/payouts/:id/resolve', { id: 'b' }, {}),
    );
  });

  it('takes over a reservation abandoned by a request that died before committing', async () => {
    const abandoned = scope('abandoned');
    await db.sql`
      insert into idempotency_keys (caller, key, fingerprint, state, reserved_at)
      values (${abandoned.caller}, ${abandoned.key}, ${abandoned.fingerprint}, 'in_flight',
              now() - make_interval(secs => ${inFlightLeaseSeconds + 5}))`;
    const result = await runIdempotent(
      db.sql,
      abandoned,
      (tx) => tx`insert into effects values (1)`.then(() => ({ status: 201, body: { ok: 1 } })),
      refusal,
    );
    expect(result).toMatchObject({ status: 201, replayed: false });
    expect(await effects()).toBe(1);
  });

  it('rolls back a request that outlived its lease once another took the key over: the effect happens once', async () => {
    const slow = scope('slow');
    const finalizeErrors = await outcomeCount('finalize_error');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const first = runIdempotent(
      db.sql,
      slow,
      async (tx) => {
        await tx`insert into effects values (2)`;
        started();
        await gate;
        return { status: 201, body: { by: 'first' } };
      },
      refusal,
    ).catch((error: unknown) => error);
    await running;
    await db.sql`update idempotency_keys set reserved_at = now() - make_interval(secs => ${inFlightLeaseSeconds + 5})
                 where key = ${slow.key}`;
    const second = await runIdempotent(
      db.sql,
      slow,
      (tx) => tx`insert into effects values (2)`.then(() => ({ status: 201, body: { by: 'second' } })),
      refusal,
    );
    expect(second).toMatchObject({ status: 201, replayed: false });
    release();
    expect(((await first) as DomainError).type).toBe('idempotency/in-flight');
    const [row] = await db.sql<{ count: number }[]>`select count(*)::int as count from effects where n = 2`;
    expect(row?.count).toBe(1);
    const replay = await runIdempotent(db.sql, slow, effect, refusal);
    expect(replay).toMatchObject({ replayed: true, body: second.body });
    expect(await outcomeCount('finalize_error')).toBe(finalizeErrors + 1);
  });

  it('answers 409 while a fresh reservation is in flight', async () => {
    const busy = scope('busy');
    await db.sql`insert into idempotency_keys (caller, key, fingerprint, state) values (${busy.caller}, ${busy.key}, ${busy.fingerprint}, 'in_flight')`;
    const error = await runIdempotent(db.sql, busy, effect, refusal).catch((caught: unknown) => caught);
    expect((error as DomainError).type).toBe('idempotency/in-flight');
  });

  it('stores a 4xx refusal for replay but releases the key after a 503 or an unexpected failure', async () => {
    const refused = scope('refused');
    const first = await runIdempotent(
      db.sql,
      refused,
      async () => {
        throw new DomainError('ledger/insufficient-funds', 'no');
      },
      refusal,
    );
    expect(first.status).toBe(422);
    const replay = await runIdempotent(db.sql, refused, effect, refusal);
    expect(replay).toMatchObject({ status: 422, replayed: true, body: first.body });

    const unavailable = scope('unavailable');
    await expect(
      runIdempotent(
        db.sql,
        unavailable,
        async () => {
          throw new DomainError('payments/read-only', 'later');
        },
        refusal,
      ),
    ).rejects.toThrow('later');
    const retried = await runIdempotent(db.sql, unavailable, effect, refusal);
    expect(retried).toMatchObject({ status: 201, replayed: false });

    const crashed = scope('crashed');
    await expect(
      runIdempotent(db.sql, crashed, async () => Promise.reject(new Error('boom')), refusal),
    ).rejects.toThrow('boom');
    expect((await runIdempotent(db.sql, crashed, effect, refusal)).status).toBe(201);
  });

  it('lets the next try of a key take it over at once when its request lost the database and could not release it', async () => {
    const lost = scope('lost-database');
    const logger = createLogger('silent');
    // The request's own pool on a multi-host URL, as in production (with a single host postgres.js
    // crashes when a connection dies inside a transaction: see multi-host.ts), and a connection
    // outside the test database to cut it off.
    const pool = connect({ url: multiHost(db.url, await freePort()), poolMax: 1, logger });
    const admin = connect({ url: inject('databaseAdminUrl'), poolMax: 1, logger });
    const allowConnections = (allowed: boolean) =>
      admin.unsafe(`alter database "${db.name}" allow_connections ${allowed}`);
    const finalizeErrors = await outcomeCount('finalize_error');
    try {
      const failed = await runIdempotent(
        pool,
        lost,
        async (tx) => {
          const [row] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
          await allowConnections(false);
          await admin`select pg_terminate_backend(${row?.pid ?? 0}::int)`;
          await tx`insert into effects values (3)`;
          return { status: 201, body: { by: 'first' } };
        },
        refusal,
      ).catch((error: unknown) => error);
      expect(failed).toBeInstanceOf(Error);
      expect(failed).not.toBeInstanceOf(DomainError);
      // The release found no database: the key is still reserved, as another instance sees it.
      expect(await outcomeCount('finalize_error')).toBe(finalizeErrors + 1);
      // The client keeps retrying while the database is still gone: more tries than leases kept.
      for (let attempt = 0; attempt < 12; attempt += 1) {
        const error = await runIdempotent(pool, lost, effect, refusal).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(DatabaseUnavailableError);
      }
      await allowConnections(true);
      const [stored] = await db.sql<{ state: string }[]>`
        select state from idempotency_keys where caller = ${lost.caller} and key = ${lost.key}`;
      expect(stored?.state).toBe('in_flight');
      // The pool refuses at once for a moment after finding no writable host (multi-host.ts).
      await expect
        .poll(() =>
          pool`select 1`.then(
            () => true,
            () => false,
          ),
        )
        .toBe(true);

      const retried = await runIdempotent(
        pool,
        lost,
        (tx) => tx`insert into effects values (3)`.then(() => ({ status: 201, body: { by: 'retry' } })),
        refusal,
      );
      expect(retried).toMatchObject({ status: 201, replayed: false });
      const [row] = await db.sql<{ count: number }[]>`select count(*)::int as count from effects where n = 3`;
      expect(row?.count).toBe(1);
    } finally {
      await allowConnections(true);
      await pool.end({ timeout: 1 });
      await admin.end({ timeout: 1 });
    }
  });

  it('counts outcomes in idempotency_events_total, every outcome present from the start', async () => {
    const text = await registry.metrics();
    for (const outcome of [
      'reserved',
      'replayed',
      'mismatch',
      'in_flight',
      'reserve_error',
      'finalize_error',
    ]) {
      expect(text).toContain(`idempotency_events_total{outcome="${outcome}"}`);
    }
    expect(text).toMatch(/idempotency_events_total\{outcome="replayed"\} [1-9]/);
  });

  it('purges keys older than the retention and keeps younger ones', async () => {
    await db.sql`
      insert into idempotency_keys (caller, key, fingerprint, state, reserved_at)
      values ('svc', 'old', 'f', 'in_flight', now() - interval '2 days'), ('svc', 'young', 'f', 'in_flight', now())`;
    const task = idempotencyTasks(db.sql, 86_400)[purgeTask];
    await task?.({}, undefined as never);
    const keys = (
      await db.sql<{ key: string }[]>`select key from idempotency_keys where key in ('old', 'young')`
    ).map((row) => row.key);
    expect(keys).toEqual(['young']);
  });
});
