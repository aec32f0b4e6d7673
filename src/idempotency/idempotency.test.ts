import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { canonicalJson } from '../approvals/canonical.ts';
import { DomainError } from '../platform/errors.ts';
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
