import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadlockRetries, fundFromFees } from '../../test/support/ledger.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { escrowDisputedAttempts } from './metrics.ts';
import { expireDueHolds } from './service.ts';

let service: TestService;
let escrow: string;

type Role = 'viewer' | 'operator' | 'admin' | 'service';

beforeAll(async () => {
  service = await startTestService();
  const [row] = await service.db.sql<{ id: string }[]>`
    select id from accounts where type = 'escrow' and asset = 'XLM'`;
  escrow = row?.id ?? '';
});

afterAll(async () => {
  await service.close();
});

async function customer(fundedMinor: bigint): Promise<string> {
  const [row] = await service.db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  const id = row?.id ?? '';
  if (fundedMinor > 0n) await fundFromFees(service.db.sql, id, fundedMinor);
  return id;
}

async function call(
  method: 'GET' | 'POST',
  url: string,
  options: { role?: Role; subject?: string; payload?: object; key?: string } = {},
) {
  const role = options.role ?? 'service';
  return service.app.inject({
    method,
    url,
    payload: options.payload,
    headers: {
      authorization: `Bearer ${await service.token(role, options.subject)}`,
      ...(method === 'POST' ? { 'idempotency-key': options.key ?? randomUUID() } : {}),
    },
  });
}

async function balances(...ids: string[]): Promise<bigint[]> {
  const rows = await service.db.sql<{ id: string; balance: bigint }[]>`
    select id, balance_minor as balance from accounts where id = any(${[...ids, escrow]}::uuid[])`;
  return [...ids, escrow].map((id) => rows.find((row) => row.id === id)?.balance ?? -1n);
}

/** A payer funded with `funds`, a payee, and a hold of `amount` between them. */
async function holdOf(amount: string, extra: object = {}, funds = 1_000_000_000n) {
  const payer = await customer(funds);
  const payee = await customer(0n);
  const response = await call('POST', '/v1/escrow/holds', {
    payload: { payerAccountId: payer, payeeAccountId: payee, asset: 'XLM', amount, ...extra },
  });
  expect(response.statusCode, response.body).toBe(201);
  return { payer, payee, id: String(response.json().id), hold: response.json() };
}

async function pastExpiry(holdId: string): Promise<void> {
  await service.db
    .sql`update escrow_holds set expires_at = now() - interval '1 second' where id = ${holdId}::uuid`;
}

async function events(holdId: string): Promise<string[]> {
  const rows = await service.db.sql<{ type: string }[]>`
    select type from merchant_webhook_events where body::jsonb -> 'data' ->> 'holdId' = ${holdId} order by created_at, id`;
  return rows.map((row) => row.type);
}

async function audits(holdId: string): Promise<string[]> {
  const rows = await service.db.sql<{ action: string }[]>`
    select action from audit_log where subject_type = 'escrow_hold' and subject_id = ${holdId} order by id`;
  return rows.map((row) => row.action);
}

function expect409(response: { statusCode: number; json(): { type: string } }, type: string) {
  expect(response.statusCode).toBe(409);
  expect(response.json().type).toBe(type);
}

describe('escrow holds', () => {
  it('moves the amount from the payer into escrow, with an audit row and escrow.held', async () => {
    const payer = await customer(50_000_000n);
    const payee = await customer(0n);
    const [, , escrowBefore] = await balances(payer, payee);
    const response = await call('POST', '/v1/escrow/holds', {
      payload: {
        payerAccountId: payer,
        payeeAccountId: payee,
        asset: 'XLM',
        amount: '2.5',
        reference: 'order-17',
        metadata: { order: '17' },
      },
    });
    expect(response.statusCode).toBe(201);
    const hold = response.json();
    expect(hold).toMatchObject({
      amount: '2.5000000',
      released: '0.0000000',
      remaining: '2.5000000',
      state: 'held',
      expiryOutcome: 'refund',
      metadata: { order: '17' },
    });
    expect(await balances(payer, payee)).toEqual([25_000_000n, 0n, (escrowBefore ?? 0n) + 25_000_000n]);
    expect(await audits(hold.id)).toEqual(['escrow.held']);
    // One event about each side.
    expect(await events(hold.id)).toEqual(['escrow.held', 'escrow.held']);
    // Triage reads the real holds: the escrow money is explained, nothing leaks.
    const triage = (await call('GET', '/internal/incident/escrow-leaks', { role: 'operator' })).json();
    expect(triage).toMatchObject({ leaking: false });
    expect(triage.accounts).toContainEqual(
      expect.objectContaining({ asset: 'XLM', difference: '0.0000000' }),
    );
    const shown = await call('GET', `/v1/escrow/holds/${hold.id}`, { role: 'viewer' });
    expect(shown.json()).toMatchObject({ id: hold.id, movements: [], dispute: null });
  });

  it('refuses a hold the payer cannot cover, and moves nothing', async () => {
    const payer = await customer(10_000_000n);
    const payee = await customer(0n);
    const before = await balances(payer, payee);
    const response = await call('POST', '/v1/escrow/holds', {
      payload: { payerAccountId: payer, payeeAccountId: payee, asset: 'XLM', amount: '1.0000001' },
    });
    expect(response.statusCode).toBe(422);
    expect(response.json().type).toBe('ledger/insufficient-funds');
    expect(await balances(payer, payee)).toEqual(before);
    const [count] = await service.db.sql<{ count: number }[]>`
      select count(*)::int as count from escrow_holds where payer_account_id = ${payer}::uuid`;
    expect(count?.count).toBe(0);
  });

  it('refuses bad parties and expiries', async () => {
    const payer = await customer(10_000_000n);
    const cases: [object, string][] = [
      [{ payeeAccountId: payer }, 'escrow/invalid-party'],
      [{ payeeAccountId: escrow }, 'escrow/invalid-party'],
      [{ expiresAt: new Date(Date.now() - 60_000).toISOString() }, 'escrow/invalid-expiry'],
    ];
    const payee = await customer(0n);
    for (const [change, type] of cases) {
      const response = await call('POST', '/v1/escrow/holds', {
        payload: { payerAccountId: payer, payeeAccountId: payee, asset: 'XLM', amount: '1', ...change },
      });
      expect(response.json().type, JSON.stringify(change)).toBe(type);
    }
  });

  it('releases and refunds in parts; the hold closes when nothing remains', async () => {
    const { payer, payee, id } = await holdOf('10');
    const [payerStart] = await balances(payer);
    const part = await call('POST', `/v1/escrow/holds/${id}/releases`, { payload: { amount: '3' } });
    expect(part.statusCode).toBe(200);
    expect(part.json()).toMatchObject({
      released: '3.0000000',
      remaining: '7.0000000',
      state: 'partially_released',
    });
    const refund = await call('POST', `/v1/escrow/holds/${id}/refunds`, { payload: { amount: '2' } });
    expect(refund.json()).toMatchObject({ refunded: '2.0000000', remaining: '5.0000000' });
    const rest = await call('POST', `/v1/escrow/holds/${id}/releases`, { payload: {} });
    expect(rest.json()).toMatchObject({ released: '8.0000000', remaining: '0.0000000', state: 'closed' });
    const [payerNow, payeeNow] = await balances(payer, payee);
    expect(payerNow).toBe((payerStart ?? 0n) + 20_000_000n);
    expect(payeeNow).toBe(80_000_000n);
    const detail = (await call('GET', `/v1/escrow/holds/${id}`, { role: 'viewer' })).json();
    expect(
      detail.movements.map((movement: { kind: string; amount: string }) => [movement.kind, movement.amount]),
    ).toEqual([
      ['release', '3.0000000'],
      ['refund', '2.0000000'],
      ['release', '5.0000000'],
    ]);
    expect(await events(id)).toEqual([
      'escrow.held',
      'escrow.held',
      'escrow.released',
      'escrow.released',
      'escrow.refunded',
      'escrow.refunded',
      'escrow.released',
      'escrow.released',
    ]);
  });

  it('lists holds by payer, payee, state and asset, cursor-paged', async () => {
    const payer = await customer(100_000_000n);
    const payee = await customer(0n);
    const ids: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      const response = await call('POST', '/v1/escrow/holds', {
        payload: { payerAccountId: payer, payeeAccountId: payee, asset: 'XLM', amount: '1' },
      });
      ids.push(String(response.json().id));
    }
    await call('POST', `/v1/escrow/holds/${ids[0]}/releases`, { payload: {} });
    const first = (await call('GET', `/v1/escrow/holds?payer=${payer}&limit=2`, { role: 'viewer' })).json();
    expect(first.items.map((hold: { id: string }) => hold.id)).toEqual([ids[2], ids[1]]);
    const second = (
      await call('GET', `/v1/escrow/holds?payer=${payer}&limit=2&cursor=${first.nextCursor}`, {
        role: 'viewer',
      })
    ).json();
    expect(second.items.map((hold: { id: string }) => hold.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeNull();
    const closed = (
      await call('GET', `/v1/escrow/holds?payee=${payee}&state=closed&asset=XLM`, { role: 'viewer' })
    ).json();
    expect(closed.items.map((hold: { id: string }) => hold.id)).toEqual([ids[0]]);
    const tooMany = await call('GET', '/v1/escrow/holds?limit=201', { role: 'viewer' });
    expect(tooMany.statusCode).toBe(400);
  });
});

describe('escrow disputes', () => {
  it('lists disputes newest first by state, cursor-paged', async () => {
    const disputed: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      const { id } = await holdOf('1');
      const opened = await call('POST', `/v1/escrow/holds/${id}/disputes`, {
        role: 'operator',
        payload: { reason: `dispute ${index}` },
      });
      expect(opened.statusCode, opened.body).toBe(201);
      disputed.push(id);
    }
    const first = (await call('GET', '/v1/escrow/disputes?state=open&limit=2', { role: 'viewer' })).json();
    expect(first.items.map((row: { holdId: string }) => row.holdId)).toEqual([disputed[2], disputed[1]]);
    expect(first.items[0]).toMatchObject({
      state: 'open',
      reason: 'dispute 2',
      openedBy: expect.any(String),
    });
    const second = (
      await call('GET', `/v1/escrow/disputes?state=open&limit=2&cursor=${first.nextCursor}`, {
        role: 'viewer',
      })
    ).json();
    expect(second.items.map((row: { holdId: string }) => row.holdId)).toContain(disputed[0]);
    const resolved = (await call('GET', '/v1/escrow/disputes?state=resolved', { role: 'viewer' })).json();
    expect(resolved.items.map((row: { holdId: string }) => row.holdId)).not.toContain(disputed[0]);
    expect((await call('GET', '/v1/escrow/disputes?limit=201', { role: 'viewer' })).statusCode).toBe(400);
    expect((await call('GET', '/v1/escrow/disputes?state=held', { role: 'viewer' })).statusCode).toBe(400);
  });
});

describe('forbidden paths move nothing', () => {
  it('over-release is refused with what remains', async () => {
    const { payer, payee, id } = await holdOf('5');
    const before = await balances(payer, payee);
    const response = await call('POST', `/v1/escrow/holds/${id}/releases`, {
      payload: { amount: '5.0000001' },
    });
    expect409(response, 'escrow/exceeds-remaining');
    expect(response.json().remaining).toBe('5.0000000');
    expect(await balances(payer, payee)).toEqual(before);
  });

  it('release, refund and dispute on a closed hold are refused', async () => {
    const { payer, payee, id } = await holdOf('1');
    await call('POST', `/v1/escrow/holds/${id}/refunds`, { payload: {} });
    const before = await balances(payer, payee);
    expect409(await call('POST', `/v1/escrow/holds/${id}/releases`, { payload: {} }), 'escrow/hold-closed');
    expect409(
      await call('POST', `/v1/escrow/holds/${id}/refunds`, { payload: { amount: '1' } }),
      'escrow/hold-closed',
    );
    expect409(
      await call('POST', `/v1/escrow/holds/${id}/disputes`, { payload: { reason: 'late' } }),
      'escrow/hold-closed',
    );
    expect(await balances(payer, payee)).toEqual(before);
  });

  it('a hold past expiresAt is expired at once on reads and writes, before the job runs', async () => {
    const { payer, payee, id } = await holdOf('4', {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    await pastExpiry(id);
    const before = await balances(payer, payee);
    const shown = (await call('GET', `/v1/escrow/holds/${id}`, { role: 'viewer' })).json();
    expect(shown).toMatchObject({ state: 'expired', remaining: '4.0000000' });
    const listed = (
      await call('GET', `/v1/escrow/holds?payer=${payer}&state=expired`, { role: 'viewer' })
    ).json();
    expect(listed.items).toHaveLength(1);
    expect409(
      await call('POST', `/v1/escrow/holds/${id}/releases`, { payload: { amount: '1' } }),
      'escrow/hold-expired',
    );
    expect409(
      await call('POST', `/v1/escrow/holds/${id}/disputes`, { payload: { reason: 'x' } }),
      'escrow/hold-expired',
    );
    expect(await balances(payer, payee)).toEqual(before);

    expect(await withTransaction(service.db.sql, (tx) => expireDueHolds(tx, 100))).toBeGreaterThanOrEqual(1);
    const [payerAfter, payeeAfter, escrowAfter] = await balances(payer, payee);
    expect([payerAfter, payeeAfter, escrowAfter]).toEqual([
      (before[0] ?? 0n) + 40_000_000n,
      0n,
      (before[2] ?? 0n) - 40_000_000n,
    ]);
    expect((await call('GET', `/v1/escrow/holds/${id}`, { role: 'viewer' })).json()).toMatchObject({
      state: 'expired',
      refunded: '4.0000000',
      remaining: '0.0000000',
      movements: [{ kind: 'refund', cause: 'expiry' }],
    });
    expect((await events(id)).slice(2)).toEqual(['escrow.expired', 'escrow.expired']);
    expect409(await call('POST', `/v1/escrow/holds/${id}/refunds`, { payload: {} }), 'escrow/hold-expired');
  });

  it('a disputed hold refuses release, refund and expiry, and records each attempt', async () => {
    const { payer, payee, id } = await holdOf('6', {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const disputed = await call('POST', `/v1/escrow/holds/${id}/disputes`, {
      payload: { reason: 'goods not delivered', evidenceRefs: ['ticket-9'] },
    });
    expect(disputed.statusCode).toBe(201);
    expect(disputed.json()).toMatchObject({
      state: 'disputed',
      dispute: {
        state: 'open',
        reason: 'goods not delivered',
        evidenceRefs: ['ticket-9'],
        openedBy: 'service-user',
      },
    });
    const before = await balances(payer, payee);
    const securityBefore = await service.db
      .sql`select 1 from security_events where kind = 'escrow.disputed_hold_attempt'`;
    const countedBefore = await disputedAttemptsCounted();
    expect409(
      await call('POST', `/v1/escrow/holds/${id}/releases`, { payload: { amount: '1' } }),
      'escrow/hold-disputed',
    );
    expect409(await call('POST', `/v1/escrow/holds/${id}/refunds`, { payload: {} }), 'escrow/hold-disputed');
    expect409(
      await call('POST', `/v1/escrow/holds/${id}/disputes`, { payload: { reason: 'again' } }),
      'escrow/already-disputed',
    );
    await pastExpiry(id);
    await withTransaction(service.db.sql, (tx) => expireDueHolds(tx, 100));
    await withTransaction(service.db.sql, (tx) => expireDueHolds(tx, 100));
    expect((await call('GET', `/v1/escrow/holds/${id}`, { role: 'viewer' })).json().state).toBe('disputed');
    expect(await balances(payer, payee)).toEqual(before);
    expect(await audits(id)).toEqual([
      'escrow.held',
      'escrow.disputed',
      'escrow.release_refused_disputed',
      'escrow.refund_refused_disputed',
      // Recorded once, however often the job runs.
      'escrow.expiry_refused_disputed',
    ]);
    const securityAfter = await service.db
      .sql`select 1 from security_events where kind = 'escrow.disputed_hold_attempt'`;
    expect(securityAfter.length - securityBefore.length).toBe(3);
    const countedAfter = await disputedAttemptsCounted();
    expect({
      release: countedAfter.release - countedBefore.release,
      refund: countedAfter.refund - countedBefore.refund,
      expiry: countedAfter.expiry - countedBefore.expiry,
    }).toEqual({ release: 1, refund: 1, expiry: 1 });
  });

  it('a resolution needs a second admin, runs once, and splits exactly the remainder', async () => {
    const { payer, payee, id } = await holdOf('10');
    await call('POST', `/v1/escrow/holds/${id}/releases`, { payload: { amount: '2' } });
    await call('POST', `/v1/escrow/holds/${id}/disputes`, {
      role: 'operator',
      payload: { reason: 'partial delivery' },
    });
    const mismatch = await call('POST', `/v1/escrow/holds/${id}/dispute-resolutions`, {
      role: 'admin',
      subject: 'ada',
      payload: { outcome: 'split', releaseAmount: '5', refundAmount: '4', reason: 'half each' },
    });
    expect(mismatch.statusCode).toBe(422);
    expect(mismatch.json().type).toBe('escrow/resolution-mismatch');
    const proposed = await call('POST', `/v1/escrow/holds/${id}/dispute-resolutions`, {
      role: 'admin',
      subject: 'ada',
      payload: { outcome: 'split', releaseAmount: '5', refundAmount: '3', reason: 'five to the seller' },
    });
    expect(proposed.statusCode).toBe(202);
    const proposal = proposed.json();
    expect(proposal).toMatchObject({
      action: 'escrow.resolve_dispute',
      payload: { holdId: id, outcome: 'split', releaseAmount: '5.0000000', refundAmount: '3.0000000' },
    });
    const before = await balances(payer, payee);
    const self = await call('POST', `/v1/approvals/${proposal.id}/approve`, {
      role: 'admin',
      subject: 'ada',
      payload: { payloadHash: proposal.payloadHash },
    });
    expect(self.statusCode).toBe(403);
    expect(self.json().type).toBe('approvals/self-approval');
    expect(await balances(payer, payee)).toEqual(before);

    const approved = await call('POST', `/v1/approvals/${proposal.id}/approve`, {
      role: 'admin',
      subject: 'bob',
      payload: { payloadHash: proposal.payloadHash },
    });
    expect(approved.statusCode).toBe(200);
    expect(approved.json().state).toBe('executed');
    const after = await balances(payer, payee);
    expect(after).toEqual([
      (before[0] ?? 0n) + 30_000_000n,
      (before[1] ?? 0n) + 50_000_000n,
      (before[2] ?? 0n) - 80_000_000n,
    ]);
    expect((await call('GET', `/v1/escrow/holds/${id}`, { role: 'viewer' })).json()).toMatchObject({
      state: 'closed',
      released: '7.0000000',
      refunded: '3.0000000',
      dispute: { state: 'resolved', outcome: 'split', proposalId: proposal.id },
    });
    const again = await call('POST', `/v1/approvals/${proposal.id}/approve`, {
      role: 'admin',
      subject: 'carol',
      payload: { payloadHash: proposal.payloadHash },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().type).toBe('approvals/not-pending');
    expect(await balances(payer, payee)).toEqual(after);
    const late = await call('POST', `/v1/escrow/holds/${id}/dispute-resolutions`, {
      role: 'admin',
      subject: 'ada',
      payload: { outcome: 'refund', reason: 'again' },
    });
    expect409(late, 'escrow/not-disputed');
    expect((await events(id)).slice(-2)).toEqual(['escrow.dispute_resolved', 'escrow.dispute_resolved']);
  });

  it('an Idempotency-Key reused with another amount is refused; the same request replays', async () => {
    const { payer, payee, id } = await holdOf('5');
    const key = randomUUID();
    const first = await call('POST', `/v1/escrow/holds/${id}/releases`, { key, payload: { amount: '1' } });
    expect(first.statusCode).toBe(200);
    const before = await balances(payer, payee);
    const replay = await call('POST', `/v1/escrow/holds/${id}/releases`, { key, payload: { amount: '1' } });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body).toBe(first.body);
    const reused = await call('POST', `/v1/escrow/holds/${id}/releases`, { key, payload: { amount: '2' } });
    expect(reused.statusCode).toBe(422);
    expect(reused.json().type).toBe('idempotency/key-reused');
    expect(await balances(payer, payee)).toEqual(before);
    const missing = await service.app.inject({
      method: 'POST',
      url: `/v1/escrow/holds/${id}/releases`,
      payload: {},
      headers: { authorization: `Bearer ${await service.token('service')}` },
    });
    expect(missing.json().type).toBe('idempotency/key-required');
  });

  it('only the service moves money; staff read', async () => {
    const { id } = await holdOf('1');
    expect(
      (await call('POST', `/v1/escrow/holds/${id}/releases`, { role: 'admin', payload: {} })).statusCode,
    ).toBe(403);
    expect((await call('GET', `/v1/escrow/holds/${id}`, { role: 'viewer' })).statusCode).toBe(200);
  });
});

describe('concurrency', () => {
  it('50 concurrent releases of 1 on a hold of 20: exactly 20 succeed, the rest are refused, no 5xx', async () => {
    const { payee, id } = await holdOf('20');
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        call('POST', `/v1/escrow/holds/${id}/releases`, { payload: { amount: '1' } }),
      ),
    );
    const statuses = responses.map((response) => response.statusCode);
    expect(statuses.filter((status) => status === 200)).toHaveLength(20);
    expect(statuses.filter((status) => status >= 500)).toEqual([]);
    const types = new Set(responses.filter((r) => r.statusCode !== 200).map((r) => r.json().type));
    expect(
      [...types].every((type) => type === 'escrow/exceeds-remaining' || type === 'escrow/hold-closed'),
    ).toBe(true);
    expect(responses.filter((r) => r.statusCode !== 200)).toHaveLength(30);
    const [payeeBalance] = await balances(payee);
    expect(payeeBalance).toBe(200_000_000n);
    expect((await call('GET', `/v1/escrow/holds/${id}`, { role: 'viewer' })).json()).toMatchObject({
      state: 'closed',
      released: '20.0000000',
    });
  });

  it('a release racing a dispute and an expiry: exactly one wins, the others get their precise code', async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < 12; round += 1) {
      const { payer, payee, id } = await holdOf('3', {
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      const before = await balances(payer, payee);
      // The hold expires as the race starts, during it, or (every third round) long after it: the
      // expiry guard, the dispute and the release meet at different points.
      const expiresIn = round % 3 === 2 ? '1 hour' : `${(round % 6) * 8} milliseconds`;
      await service.db.sql`
        update escrow_holds set expires_at = now() + ${expiresIn}::interval where id = ${id}::uuid`;
      const sweep = () => withTransaction(service.db.sql, (tx) => expireDueHolds(tx, 100));
      const [release, dispute] = await Promise.all([
        call('POST', `/v1/escrow/holds/${id}/releases`, { payload: {} }),
        call('POST', `/v1/escrow/holds/${id}/disputes`, { payload: { reason: 'race' } }),
        sweep(),
        new Promise((resolve) => setTimeout(resolve, 20)).then(sweep),
      ]);
      // Whatever the job had not applied yet, it applies now.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await sweep();
      const [row] = await service.db.sql<
        { state: string }[]
      >`select state from escrow_holds where id = ${id}::uuid`;
      const expired = row?.state === 'expired';
      const wins = [release.statusCode === 200, dispute.statusCode === 201, expired];
      expect(wins.filter(Boolean), `round ${round}`).toHaveLength(1);
      const winner = expired ? 'expiry' : release.statusCode === 200 ? 'release' : 'dispute';
      outcomes.add(winner);
      const loserCodes = [release, dispute].filter((r) => r.statusCode >= 400).map((r) => r.json().type);
      const precise = {
        expiry: 'escrow/hold-expired',
        release: 'escrow/hold-closed',
        dispute: 'escrow/hold-disputed',
      };
      expect(loserCodes, `round ${round}`).toEqual(loserCodes.map(() => precise[winner]));
      expect(loserCodes).toHaveLength(winner === 'expiry' ? 2 : 1);
      // Nothing moved twice: escrow gave up the amount once, or (disputed) not at all.
      const after = await balances(payer, payee);
      expect((before[2] ?? 0n) - (after[2] ?? 0n)).toBe(winner === 'dispute' ? 0n : 30_000_000n);
      expect((after[0] ?? 0n) - (before[0] ?? 0n) + (after[1] ?? 0n) - (before[1] ?? 0n)).toBe(
        winner === 'dispute' ? 0n : 30_000_000n,
      );
    }
    // Round 0 expires before the race; round 2 cannot expire during it.
    expect(outcomes.has('expiry')).toBe(true);
    expect(outcomes.has('release') || outcomes.has('dispute')).toBe(true);
    // Hold row first, then accounts (docs/ledger.md, "Lock order"): no transaction waited in a cycle.
    expect(await deadlockRetries()).toBe(0);
  });
});

/** escrow_disputed_attempts_total by action, as this process exports it. */
async function disputedAttemptsCounted(): Promise<Record<'release' | 'refund' | 'expiry', number>> {
  const { values } = await escrowDisputedAttempts.get();
  const of = (action: string) => values.find((value) => value.labels.action === action)?.value ?? 0;
  return { release: of('release'), refund: of('refund'), expiry: of('expiry') };
}
