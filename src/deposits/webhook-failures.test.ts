import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/support/db.ts';
import { issueReference } from '../../test/support/intents.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { updatePaymentsMode } from '../controls/data.ts';
import { problemCatalogue } from '../platform/errors.ts';
import { registry } from '../platform/metrics.ts';
import { signatureHeaderValue } from './signature.ts';

/**
 * What a provider is told when we cannot take its webhook now (a database failure, a bug, the
 * kill switch): 503 with `Retry-After` and nothing kept, so its own retry delivers the deposit.
 * Only a refusal of the content is dead-lettered.
 */

const secret = 'rampco-failures-secret-0001';
// Long enough for a healthy statement, short enough that a held row lock fails the webhook fast.
const lockTimeout = '300ms';
const usdc = 'USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN';
let service: TestService;
let xlmAccount: string;
const logLines: string[] = [];

beforeAll(async () => {
  const db = await createTestDatabase();
  await db.sql.unsafe(`alter database "${db.name}" set lock_timeout = '${lockTimeout}'`);
  service = await startTestService({
    db,
    env: { DEPOSIT_WEBHOOK_SECRET_RAMPCO: secret },
    logDestination: { write: (line: string) => logLines.push(line) },
  });
  await service.db.sql`insert into deposit_providers (name, kind) values ('rampco', 'external')`;
  xlmAccount = await newAccount('XLM');
  // A webhook credits only a reference settledesk issued (bound.test.ts covers the others).
  for (const reference of ['ref-locked', 'planted-reference-5f1c']) {
    await issue(reference, xlmAccount);
  }
});

async function issue(reference: string, accountId: string): Promise<void> {
  await issueReference(service.db.sql, { provider: 'rampco', reference, accountId });
}

/** An account closed after its reference was issued: its deposits are refused and dead-lettered. */
async function closedAccountWith(reference: string): Promise<string> {
  const accountId = await newAccount('XLM');
  await issue(reference, accountId);
  await service.db.sql`update accounts set status = 'closed' where id = ${accountId}::uuid`;
  return accountId;
}

afterAll(async () => {
  await service.close();
  await service.db.drop();
});

async function newAccount(asset: string): Promise<string> {
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', ${asset}) returning id`;
  return row?.id ?? '';
}

type Sent = { statusCode: number; body: Record<string, unknown>; contentType: string; retryAfter: unknown };

async function send(body: string): Promise<Sent> {
  const response = await service.app.inject({
    method: 'POST',
    url: '/v1/webhooks/deposits/rampco',
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-webhook-signature': signatureHeaderValue(secret, Math.floor(Date.now() / 1_000), body),
    },
  });
  return {
    statusCode: response.statusCode,
    body: response.json(),
    contentType: String(response.headers['content-type']),
    retryAfter: response.headers['retry-after'],
  };
}

function deposit(reference: string, accountId = xlmAccount, asset = 'XLM', amount = '5'): string {
  return JSON.stringify({ reference, accountId, asset, amount });
}

async function credits(reference: string): Promise<number> {
  const rows = await service.db
    .sql`select 1 from journal_transactions where kind = 'deposit' and reference = ${`rampco:${reference}`}`;
  return rows.length;
}

/** Every webhook we kept for this reference, whatever its state. */
async function stored(reference: string): Promise<{ state: string; error: string | null }[]> {
  return service.db.sql<{ state: string; error: string | null }[]>`
    select state, error from inbound_webhooks where body::jsonb ->> 'reference' = ${reference}`;
}

async function unavailableCount(): Promise<number> {
  const values = (await registry.getSingleMetric('deposit_webhooks_total')?.get())?.values ?? [];
  return values
    .filter((value) => value.labels.provider === 'rampco' && value.labels.outcome === 'unavailable')
    .reduce((sum, value) => sum + value.value, 0);
}

/** A 503 the provider retries: problem+json with a whole number of seconds to wait. */
function expectRetryLater(sent: Sent, type: string): void {
  expect(sent.statusCode).toBe(503);
  expect(sent.contentType).toContain('application/problem+json');
  expect(sent.body.type).toBe(type);
  expect(String(sent.retryAfter)).toMatch(/^[1-9][0-9]*$/);
}

describe('deposit webhooks that cannot be processed now', () => {
  it('answers a lock timeout with 503 and Retry-After, keeps nothing, and credits once on the retry', async () => {
    const before = await unavailableCount();
    let held: Sent | undefined;
    // Another transaction holds the account's row lock longer than the service's lock_timeout.
    await service.db.sql.begin(async (tx) => {
      await tx`select 1 from accounts where id = ${xlmAccount}::uuid for update`;
      held = await send(deposit('ref-locked'));
    });
    expect(held).toBeDefined();
    if (!held) return;
    expectRetryLater(held, 'service/unavailable');
    expect(JSON.stringify(held.body)).not.toContain('lock timeout');
    expect(await stored('ref-locked')).toEqual([]);
    expect(await credits('ref-locked')).toBe(0);
    expect(await unavailableCount()).toBe(before + 1);

    const retried = await send(deposit('ref-locked'));
    expect(retried.statusCode).toBe(201);
    expect(await credits('ref-locked')).toBe(1);
    expect((await send(deposit('ref-locked'))).statusCode).toBe(200);
    expect(await credits('ref-locked')).toBe(1);
  });

  it('answers an internal failure (a missing system account) with 503 and keeps nothing', async () => {
    // An asset enabled without its system accounts: crediting it breaks an invariant of ours.
    await service.db.sql`insert into assets (code) values (${usdc})`;
    const account = await newAccount(usdc);
    await issue('ref-broken', account);
    const failed = await send(deposit('ref-broken', account, usdc, '2'));
    expectRetryLater(failed, 'service/unavailable');
    expect(JSON.stringify(failed.body)).not.toContain('deposit_clearing');
    expect(await stored('ref-broken')).toEqual([]);
    expect(await credits('ref-broken')).toBe(0);

    await service.db.sql`select ledger_ensure_system_accounts(${usdc}::text)`;
    expect((await send(deposit('ref-broken', account, usdc, '2'))).statusCode).toBe(201);
    expect(await credits('ref-broken')).toBe(1);
  });

  it('answers read_only mode with 503 payments/read-only and Retry-After for a reference never issued, and holds its retry after it', async () => {
    const sql = service.db.sql;
    await updatePaymentsMode(sql, 'read_only', 'test', 'incident');
    try {
      const parked = await send(deposit('ref-read-only'));
      expectRetryLater(parked, 'payments/read-only');
      expect(await stored('ref-read-only')).toEqual([]);
    } finally {
      await updatePaymentsMode(sql, 'standard', 'test', 'over');
    }
    const retried = await send(deposit('ref-read-only'));
    expect(retried.statusCode).toBe(200);
    expect(retried.body.outcome).toBe('held');
    expect(await credits('ref-read-only')).toBe(0);
  });

  it('refuses a control character in the payload with 400 instead of a database error', async () => {
    const sent = await send(deposit('ref-\u0000-nul'));
    expect(sent.statusCode).toBe(400);
    expect(sent.body.type).toBe('request/validation');
    expect(JSON.stringify(sent.body)).not.toMatch(/byte sequence|UTF8/);
    const lone = await send(
      JSON.stringify({ reference: 'ref-\ud800', accountId: xlmAccount, asset: 'XLM', amount: '1' }),
    );
    expect(lone.statusCode).toBe(400);
    expect(lone.body.type).toBe('request/validation');
  });

  it('dead-letters a refusal with its 4xx problem, and dead letters hold a problem type and a safe detail only', async () => {
    const closed = await closedAccountWith('ref-closed-account');
    const refused = await send(deposit('ref-closed-account', closed));
    expect(refused.statusCode).toBe(422);
    expect(refused.contentType).toContain('application/problem+json');
    expect(refused.body.type).toBe('ledger/account-closed');
    expect(typeof refused.body.webhookId).toBe('string');
    expect(await stored('ref-closed-account')).toEqual([
      { state: 'dead_letter', error: `ledger/account-closed: account ${closed} is closed` },
    ]);

    const errors = await service.db.sql<{ error: string | null }[]>`
      select error from inbound_webhooks where state = 'dead_letter'`;
    const types = Object.keys(problemCatalogue);
    for (const { error } of errors) {
      expect(
        types.some((type) => error?.startsWith(`${type}: `)),
        String(error),
      ).toBe(true);
    }
  });

  it('keeps a dead letter as it was when its replay fails in the database, and the next replay credits once', async () => {
    const accountId = await closedAccountWith('ref-replay-locked');
    const parked = await send(deposit('ref-replay-locked', accountId));
    const webhookId = String(parked.body.webhookId);
    await service.db.sql`update accounts set status = 'active' where id = ${accountId}::uuid`;
    const token = await service.token('operator');
    const replay = () =>
      service.app.inject({
        method: 'POST',
        url: `/v1/webhooks/dead-letters/${webhookId}/replay`,
        headers: { authorization: `Bearer ${token}`, 'idempotency-key': randomUUID() },
      });
    let failed: { statusCode: number; body: string } | undefined;
    await service.db.sql.begin(async (tx) => {
      await tx`select 1 from accounts where id = ${accountId}::uuid for update`;
      failed = await replay();
    });
    expect([500, 503]).toContain(failed?.statusCode);
    expect(failed?.body).not.toContain('lock timeout');
    const [row] = await service.db.sql<{ state: string; error: string | null }[]>`
      select state, error from inbound_webhooks where id = ${webhookId}::uuid`;
    expect(row).toEqual({
      state: 'dead_letter',
      error: `ledger/account-closed: account ${accountId} is closed`,
    });

    expect((await replay()).statusCode).toBe(200);
    expect(await credits('ref-replay-locked')).toBe(1);
  });

  it("logs this domain's refusals and failures by problem type and ids, never the payload's text", async () => {
    const reference = 'planted-reference-5f1c';
    const asset = 'PLANTEDASSET9';
    await send(deposit(reference));
    const mismatch = await send(deposit(reference, xlmAccount, 'XLM', '6'));
    expect(mismatch.statusCode).toBe(409);
    const otherAsset = await send(deposit('planted-asset-ref', xlmAccount, asset));
    expect(otherAsset.statusCode).toBe(422);

    const ours = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => String(line.msg).startsWith('deposit webhook'));
    expect(ours.find((line) => line.problem === 'webhook/reference-mismatch')).toMatchObject({
      provider: 'rampco',
      depositId: expect.any(String),
    });
    expect(ours.find((line) => line.problem === 'ledger/asset-mismatch')).toMatchObject({
      provider: 'rampco',
      webhookId: otherAsset.body.webhookId,
    });
    for (const line of ours) {
      const text = JSON.stringify(line);
      expect(text).not.toContain(reference);
      expect(text).not.toContain(asset);
    }
  });
});
