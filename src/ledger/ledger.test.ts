import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundFromFees } from '../../test/support/ledger.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { formatAmount } from '../money/money.ts';
import { AssertionError } from '../platform/assert.ts';
import { transactionRetries, withTransaction } from '../platform/db/transaction.ts';
import { selectAccount } from './data.ts';
import { lockAccounts, postJournal } from './service.ts';

let service: TestService;
let serviceToken: string;
const unit = 10_000_000n;

beforeAll(async () => {
  service = await startTestService({
    logDestination: process.env.LEDGER_TEST_LOG ? process.stderr : undefined,
  });
  serviceToken = await service.token('service', 'acme-backend');
});

afterAll(async () => {
  await service.close();
});

async function openAccount(type: 'customer' | 'merchant' = 'customer'): Promise<string> {
  const response = await service.app.inject({
    method: 'POST',
    url: '/v1/accounts',
    headers: { authorization: `Bearer ${serviceToken}` },
    payload: { type, asset: 'XLM', ownerRef: 'cust-1' },
  });
  expect(response.statusCode).toBe(201);
  return response.json().id;
}

async function fund(accountId: string, amountMinor: bigint): Promise<void> {
  await fundFromFees(service.db.sql, accountId, amountMinor);
}

function post(body: object, key: string | null = randomUUID()) {
  return service.app.inject({
    method: 'POST',
    url: '/v1/transfers',
    headers: { authorization: `Bearer ${serviceToken}`, ...(key !== null ? { 'idempotency-key': key } : {}) },
    payload: body,
  });
}

async function balanceMinor(accountId: string): Promise<bigint> {
  const [row] = await service.db.sql<
    { balanceMinor: bigint }[]
  >`select balance_minor as "balanceMinor" from accounts where id = ${accountId}::uuid`;
  return row?.balanceMinor ?? -1n;
}

async function counts(): Promise<Record<string, number>> {
  const [row] = await service.db.sql<Record<string, number>[]>`
    select (select count(*)::int from journal_transactions) as journals, (select count(*)::int from entries) as entries,
           (select count(*)::int from audit_log) as audits, (select count(*)::int from idempotency_keys) as keys`;
  return row ?? {};
}

async function ledgerInvariants(): Promise<void> {
  const sql = service.db.sql;
  expect(await sql`select asset from entries group by asset having sum(amount_minor) <> 0`).toHaveLength(0);
  expect(
    await sql`select id from accounts where type in ('customer', 'merchant') and balance_minor < 0`,
  ).toHaveLength(0);
  expect(
    await sql`select a.id from accounts a left join entries e on e.account_id = a.id
              group by a.id, a.balance_minor having a.balance_minor <> coalesce(sum(e.amount_minor), 0)`,
  ).toHaveLength(0);
  // Postings lock their accounts before inserting, so an account's entry ids follow the order its
  // postings committed in: the running sum is the balance after each one, and none went below 0.
  expect(
    await sql`select account_id from (
                select e.account_id, sum(e.amount_minor) over (partition by e.account_id order by e.id) as running
                from entries e join accounts a on a.id = e.account_id where a.type in ('customer', 'merchant')
              ) s group by account_id having min(running) < 0`,
  ).toHaveLength(0);
}

function deadlockRetries(): Promise<number> {
  return transactionRetries
    .get()
    .then((metric) => metric.values.find((value) => value.labels.sqlstate === '40P01')?.value ?? 0);
}

describe('transfers', () => {
  it('moves funds atomically and can be read back', async () => {
    const [a, b] = [await openAccount(), await openAccount('merchant')];
    await fund(a, 10n * unit);
    const response = await post({
      sourceAccountId: a,
      destinationAccountId: b,
      amount: '2.5',
      reference: 'order-1',
    });
    expect(response.statusCode).toBe(201);
    const created = response.json();
    expect(created).toMatchObject({
      sourceAccountId: a,
      destinationAccountId: b,
      amount: '2.5000000',
      asset: 'XLM',
    });
    expect(await balanceMinor(a)).toBe(75_000_000n);
    expect(await balanceMinor(b)).toBe(25_000_000n);
    const read = await service.app.inject({
      method: 'GET',
      url: `/v1/transfers/${created.id}`,
      headers: { authorization: `Bearer ${await service.token('viewer')}` },
    });
    expect(read.json()).toEqual(created);
    const account = await service.app.inject({
      method: 'GET',
      url: `/v1/accounts/${b}`,
      headers: { authorization: `Bearer ${serviceToken}` },
    });
    expect(account.json().balance).toBe('2.5000000');
    const entries = await service.app.inject({
      method: 'GET',
      url: `/v1/accounts/${a}/entries?limit=1`,
      headers: { authorization: `Bearer ${serviceToken}` },
    });
    expect(entries.json().items).toHaveLength(1);
    expect(entries.json().nextCursor).toEqual(expect.any(String));
  });

  it('refuses every bad request with its own problem type and writes nothing', async () => {
    const [a, b] = [await openAccount(), await openAccount()];
    await fund(a, unit);
    const [usdc] = await service.db.sql<{ id: string }[]>`
      with asset as (insert into assets (code) values ('USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN') returning code)
      insert into accounts (type, asset) select 'customer', code from asset returning id`;
    const before = await counts();
    const cases: [object, string | undefined, string][] = [
      [{ sourceAccountId: a, destinationAccountId: b, amount: '1e2' }, undefined, 'money/invalid-format'],
      [{ sourceAccountId: a, destinationAccountId: b, amount: '-1' }, undefined, 'money/sign-not-allowed'],
      [
        { sourceAccountId: a, destinationAccountId: b, amount: '0.00000001' },
        undefined,
        'money/too-many-decimals',
      ],
      [{ sourceAccountId: a, destinationAccountId: b, amount: '0' }, undefined, 'money/not-positive'],
      [
        { sourceAccountId: a, destinationAccountId: b, amount: '99999999999999999999' },
        undefined,
        'money/too-large',
      ],
      [{ sourceAccountId: a, destinationAccountId: b, amount: 1 }, undefined, 'request/validation'],
      [
        { sourceAccountId: a, destinationAccountId: randomUUID(), amount: '1' },
        undefined,
        'ledger/account-not-found',
      ],
      [
        { sourceAccountId: a, destinationAccountId: usdc?.id, amount: '0.1' },
        undefined,
        'ledger/asset-mismatch',
      ],
      [{ sourceAccountId: a, destinationAccountId: a, amount: '0.1' }, undefined, 'ledger/same-account'],
      [{ sourceAccountId: a, destinationAccountId: b, amount: '2' }, undefined, 'ledger/insufficient-funds'],
      [{ sourceAccountId: a, destinationAccountId: b, amount: '0.1' }, 'none', 'idempotency/key-required'],
    ];
    const seen = new Set<string>();
    for (const [body, keyMode, type] of cases) {
      const response = await post(body, keyMode === 'none' ? null : randomUUID());
      expect(response.statusCode, type).toBeGreaterThanOrEqual(400);
      expect(response.statusCode, type).toBeLessThan(500);
      expect(response.json().type).toBe(type);
      seen.add(type);
    }
    expect(seen.size).toBe(cases.length);
    const after = await counts();
    expect(after.journals).toBe(before.journals);
    expect(after.entries).toBe(before.entries);
    expect(after.audits).toBe(before.audits);
    expect(await balanceMinor(a)).toBe(unit);
    expect(await balanceMinor(b)).toBe(0n);
  });

  it('creates one transfer for 50 concurrent identical requests with one key, and every non-409 answer is identical', async () => {
    const [a, b] = [await openAccount(), await openAccount()];
    await fund(a, 10n * unit);
    const key = randomUUID();
    const body = { sourceAccountId: a, destinationAccountId: b, amount: '1' };
    const journalsBefore = (await counts()).journals;
    const responses = await Promise.all(Array.from({ length: 50 }, () => post(body, key)));
    expect((await counts()).journals).toBe((journalsBefore ?? 0) + 1);
    const answered = responses.filter((response) => response.statusCode !== 409);
    expect(answered.length).toBeGreaterThan(0);
    for (const response of answered) {
      expect(response.statusCode).toBe(201);
      expect(response.body).toBe(answered[0]?.body);
    }
    for (const response of responses.filter((r) => r.statusCode === 409))
      expect(response.json().type).toBe('idempotency/in-flight');
    const replay = await post(body, key);
    expect(replay.body).toBe(answered[0]?.body);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(await balanceMinor(b)).toBe(unit);
    const before = await counts();
    const mismatch = await post({ ...body, amount: '2' }, key);
    expect(mismatch.statusCode).toBe(422);
    expect(mismatch.json().type).toBe('idempotency/key-reused');
    expect(await counts()).toEqual(before);
  });

  it('lets exactly 100 of 200 concurrent 1-unit transfers out of 100 units succeed', async () => {
    const [a, b] = [await openAccount(), await openAccount()];
    await fund(a, 100n * unit);
    const responses = await Promise.all(
      Array.from({ length: 200 }, () => post({ sourceAccountId: a, destinationAccountId: b, amount: '1' })),
    );
    const statuses = responses.map((response) => response.statusCode);
    expect(statuses.filter((status) => status === 201)).toHaveLength(100);
    const refused = responses.filter((response) => response.statusCode !== 201);
    expect(refused).toHaveLength(100);
    for (const response of refused) expect(response.json().type).toBe('ledger/insufficient-funds');
    expect(await balanceMinor(a)).toBe(0n);
    expect(await balanceMinor(b)).toBe(100n * unit);
    await ledgerInvariants();
  });

  it('survives 500 A→B transfers racing 500 B→A with no 5xx and exact balances', async () => {
    const [a, b] = [await openAccount(), await openAccount()];
    await fund(a, 1_000n * unit);
    await fund(b, 1_000n * unit);
    const deadlocksBefore = await deadlockRetries();
    const requests = Array.from({ length: 1_000 }, (_, index) =>
      index % 2 === 0
        ? post({ sourceAccountId: a, destinationAccountId: b, amount: '1' })
        : post({ sourceAccountId: b, destinationAccountId: a, amount: '1' }),
    );
    const responses = await Promise.all(requests);
    expect(
      responses.filter((response) => response.statusCode !== 201).map((response) => response.body),
    ).toEqual([]);
    expect(await deadlockRetries()).toBe(deadlocksBefore);
    expect(await balanceMinor(a)).toBe(1_000n * unit);
    expect(await balanceMinor(b)).toBe(1_000n * unit);
    await ledgerInvariants();
  });
});

describe('accounts', () => {
  it('pages through every entry of an account exactly once, oldest first', async () => {
    const [a, b] = [await openAccount(), await openAccount()];
    await fund(a, 10n * unit);
    for (let index = 0; index < 7; index += 1) {
      expect((await post({ sourceAccountId: a, destinationAccountId: b, amount: '0.1' })).statusCode).toBe(
        201,
      );
    }
    const ids: string[] = [];
    let cursor: string | null = '';
    for (let page = 0; cursor !== null && page < 10; page += 1) {
      const response: { statusCode: number; json(): unknown } = await service.app.inject({
        method: 'GET',
        url: `/v1/accounts/${a}/entries?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        headers: { authorization: `Bearer ${await service.token('viewer')}` },
      });
      expect(response.statusCode).toBe(200);
      const body = response.json() as { items: { id: string }[]; nextCursor: string | null };
      expect(body.items.length).toBeLessThanOrEqual(3);
      ids.push(...body.items.map((item) => item.id));
      cursor = body.nextCursor;
    }
    expect(ids).toHaveLength(8);
    expect(new Set(ids).size).toBe(8);
    expect(ids.map(BigInt)).toEqual(ids.map(BigInt).sort((x, y) => (x < y ? -1 : 1)));
  });

  it('refuses out-of-range paging and unknown accounts with 4xx problems, never a 500', async () => {
    const a = await openAccount();
    const token = await service.token('viewer');
    for (const [url, type] of [
      [`/v1/accounts/${a}/entries?cursor=9999999999999999999`, 'request/validation'],
      [`/v1/accounts/${a}/entries?limit=201`, 'request/validation'],
      [`/v1/accounts/${a}/entries?limit=0`, 'request/validation'],
      [`/v1/accounts/${randomUUID()}/entries`, 'ledger/account-not-found'],
      [`/v1/accounts/${randomUUID()}`, 'ledger/account-not-found'],
      [`/v1/transfers/${randomUUID()}`, 'ledger/transfer-not-found'],
      ['/v1/accounts/not-a-uuid', 'request/validation'],
    ] as const) {
      const response = await service.app.inject({
        method: 'GET',
        url,
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.json().type, url).toBe(type);
    }
  });

  it('lets only the service role open accounts and move money', async () => {
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const headers = {
        authorization: `Bearer ${await service.token(role)}`,
        'idempotency-key': randomUUID(),
      };
      const opened = await service.app.inject({
        method: 'POST',
        url: '/v1/accounts',
        headers,
        payload: { type: 'customer', asset: 'XLM' },
      });
      expect(opened.statusCode, role).toBe(403);
      const moved = await service.app.inject({
        method: 'POST',
        url: '/v1/transfers',
        headers,
        payload: { sourceAccountId: randomUUID(), destinationAccountId: randomUUID(), amount: '1' },
      });
      expect(moved.statusCode, role).toBe(403);
    }
  });
});

describe('the global lock order', () => {
  async function threeAccounts(): Promise<[string, string, string]> {
    const [low, middle, high] = [await openAccount(), await openAccount(), await openAccount()].sort();
    return [low ?? '', middle ?? '', high ?? ''];
  }

  it('refuses, before it waits, to lock an account below one the transaction already holds', async () => {
    const [low, , high] = await threeAccounts();
    const attempt = withTransaction(service.db.sql, async (tx) => {
      await lockAccounts(tx, [high]);
      await lockAccounts(tx, [low]);
    });
    await expect(attempt).rejects.toThrow(AssertionError);
    await expect(attempt).rejects.toThrow(/in one lockAccounts call/);
  });

  it('lets a transaction lock again what it holds, add accounts above it, and post to all of them', async () => {
    const [low, middle, high] = await threeAccounts();
    await fund(high, 3n * unit);
    await withTransaction(service.db.sql, async (tx) => {
      await lockAccounts(tx, [middle, low]);
      await lockAccounts(tx, [high, middle]);
      await lockAccounts(tx, [low]);
      await postJournal(tx, {
        kind: 'test_spread',
        entries: [
          { accountId: high, amountMinor: -2n * unit },
          { accountId: middle, amountMinor: unit },
          { accountId: low, amountMinor: unit },
        ],
      });
    });
    expect([await balanceMinor(low), await balanceMinor(middle), await balanceMinor(high)]).toEqual([
      unit,
      unit,
      unit,
    ]);
  });

  it('refuses rows passed to postJournal as already locked when lockAccounts did not lock them', async () => {
    const [low, , high] = await threeAccounts();
    await fund(high, unit);
    const attempt = withTransaction(service.db.sql, async (tx) => {
      const rows = [await selectAccount(tx, low), await selectAccount(tx, high)].filter(
        (row) => row !== undefined,
      );
      await postJournal(
        tx,
        {
          kind: 'test_unlocked',
          entries: [
            { accountId: high, amountMinor: -unit },
            { accountId: low, amountMinor: unit },
          ],
        },
        rows,
      );
    });
    await expect(attempt).rejects.toThrow(/not locked by lockAccounts/);
    expect(await balanceMinor(high)).toBe(unit);
  });
});

describe('the ledger in the database', () => {
  it('refuses UPDATE and DELETE of entries and journal transactions', async () => {
    const sql = service.db.sql;
    await expect(sql`update entries set amount_minor = amount_minor + 1`).rejects.toThrow(/immutable/);
    await expect(sql`delete from entries`).rejects.toThrow(/immutable/);
    await expect(sql`update journal_transactions set kind = 'x'`).rejects.toThrow(/immutable/);
    await expect(sql`delete from journal_transactions`).rejects.toThrow(/immutable/);
  });

  it('refuses an unbalanced journal and a negative customer balance even from raw SQL', async () => {
    const sql = service.db.sql;
    const a = await openAccount();
    const journal = randomUUID();
    await expect(
      sql.begin(async (tx) => {
        await tx`insert into journal_transactions (id, kind) values (${journal}::uuid, 'raw')`;
        await tx`insert into entries (journal_id, account_id, asset, amount_minor) values (${journal}::uuid, ${a}::uuid, 'XLM', 5)`;
        await tx`insert into entries (journal_id, account_id, asset, amount_minor)
                 select ${journal}::uuid, id, 'XLM', -4 from accounts where type = 'fees' and asset = 'XLM'`;
      }),
    ).rejects.toThrow(/does not sum to zero/);
    await expect(sql`update accounts set balance_minor = -1 where id = ${a}::uuid`).rejects.toThrow(
      /non_negative/,
    );
  });

  it('keeps every asset at zero, balances non-negative and equal to their entries over random transfer sequences', async () => {
    const accounts = [
      await openAccount(),
      await openAccount(),
      await openAccount('merchant'),
      await openAccount(),
    ];
    for (const account of accounts) await fund(account, 5n * unit);
    const badAmounts = ['0', '-1', '1e1', ' 1', '0.00000001', '99999999999999999999'];
    const move = fc.record({
      from: fc.integer({ min: 0, max: 3 }),
      to: fc.integer({ min: 0, max: 3 }),
      amount: fc.oneof(
        {
          weight: 6,
          arbitrary: fc.bigInt({ min: 1n, max: 3n * unit }).map((minor) => formatAmount(minor, 7)),
        },
        { weight: 1, arbitrary: fc.constantFrom(...badAmounts) },
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(move, { minLength: 1, maxLength: 15 }), async (moves) => {
        const expected = await Promise.all(accounts.map(balanceMinor));
        const responses = await Promise.all(
          moves.map((step) =>
            post({
              sourceAccountId: accounts[step.from],
              destinationAccountId: accounts[step.to],
              amount: step.amount,
            }),
          ),
        );
        responses.forEach((response, index) => {
          const step = moves[index];
          if (!step) return;
          if (response.statusCode !== 201) {
            expect(response.statusCode).toBeLessThan(500);
            return;
          }
          expect(step.from).not.toBe(step.to);
          expect(badAmounts).not.toContain(step.amount);
          const amountMinor = BigInt(step.amount.replace('.', ''));
          expected[step.from] = (expected[step.from] ?? 0n) - amountMinor;
          expected[step.to] = (expected[step.to] ?? 0n) + amountMinor;
        });
        // The balances are exactly what the accepted transfers say, whatever order they ran in.
        expect(await Promise.all(accounts.map(balanceMinor))).toEqual(expected);
        await ledgerInvariants();
      }),
      { numRuns: 60 },
    );
  });
});
