import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueReference } from '../../test/support/intents.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { registry } from '../platform/metrics.ts';
import { signatureHeaderValue } from './signature.ts';

const secret = 'rampco-current-secret-0001';
const previousSecret = 'rampco-previous-secret-0001';
let service: TestService;
let account: string;

beforeAll(async () => {
  service = await startTestService({ env: { DEPOSIT_WEBHOOK_SECRET_RAMPCO: `${secret},${previousSecret}` } });
  await service.db
    .sql`insert into deposit_providers (name, kind) values ('rampco', 'external'), ('oldramp', 'external')`;
  await service.db.sql`update deposit_providers set mode = 'disabled' where name = 'oldramp'`;
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  account = row?.id ?? '';
  // A webhook credits only a reference settledesk issued (bound.test.ts covers the others).
  for (const reference of ['ref-1', 'ref-rotated', 'ref-burst', 'ref-2']) {
    await issueReference(service.db.sql, { provider: 'rampco', reference, accountId: account });
  }
});

afterAll(async () => {
  await service.close();
});

type Sent = { statusCode: number; body: Record<string, unknown>; contentType: string };

async function send(
  body: string,
  options: { provider?: string; key?: string; timestamp?: number; signature?: string | null } = {},
): Promise<Sent> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1_000);
  const signature =
    options.signature === null
      ? undefined
      : (options.signature ?? signatureHeaderValue(options.key ?? secret, timestamp, body));
  const response = await service.app.inject({
    method: 'POST',
    url: `/v1/webhooks/deposits/${options.provider ?? 'rampco'}`,
    payload: body,
    headers: {
      'content-type': 'application/json',
      ...(signature === undefined ? {} : { 'x-webhook-signature': signature }),
    },
  });
  return {
    statusCode: response.statusCode,
    body: response.json(),
    contentType: String(response.headers['content-type']),
  };
}

function deposit(reference: string, amount = '5'): string {
  return JSON.stringify({ reference, accountId: account, asset: 'XLM', amount });
}

async function balance(): Promise<bigint> {
  const [row] = await service.db.sql<
    { balance: bigint }[]
  >`select balance_minor as balance from accounts where id = ${account}::uuid`;
  return row?.balance ?? 0n;
}

async function credits(reference: string): Promise<number> {
  const rows = await service.db
    .sql`select 1 from journal_transactions where kind = 'deposit' and reference = ${`rampco:${reference}`}`;
  return rows.length;
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

describe('provider deposit webhooks', () => {
  it('credits a valid webhook once and answers a resend as a replay', async () => {
    const before = await balance();
    const first = await send(deposit('ref-1'));
    expect(first.statusCode).toBe(201);
    expect(first.body.outcome).toBe('credited');
    const again = await send(deposit('ref-1'));
    expect(again.statusCode).toBe(200);
    expect(again.body).toMatchObject({ outcome: 'replay', depositId: first.body.depositId });
    expect((await balance()) - before).toBe(50_000_000n);
    expect(await credits('ref-1')).toBe(1);
  });

  it('accepts the previous secret during a rotation', async () => {
    expect((await send(deposit('ref-rotated'), { key: previousSecret })).statusCode).toBe(201);
  });

  it('credits 100 concurrent duplicates once', async () => {
    const before = await balance();
    const results = await Promise.all(Array.from({ length: 100 }, () => send(deposit('ref-burst', '1'))));
    expect(results.filter((result) => result.statusCode === 201)).toHaveLength(1);
    expect(results.filter((result) => result.statusCode === 200)).toHaveLength(99);
    expect((await balance()) - before).toBe(10_000_000n);
    expect(await credits('ref-burst')).toBe(1);
  });

  it('refuses another payload under a known reference with 409 and credits nothing', async () => {
    await send(deposit('ref-2', '3'));
    const before = await balance();
    const changed = await send(deposit('ref-2', '300'));
    expect(changed.statusCode).toBe(409);
    expect(changed.contentType).toContain('application/problem+json');
    expect(changed.body.type).toContain('webhook/reference-mismatch');
    expect(await balance()).toBe(before);
    expect(await credits('ref-2')).toBe(1);
  });

  it('refuses bad input with a 4xx, credits nothing, and records signature failures as security events', async () => {
    const before = await balance();
    const eventsBefore = await service.db.sql`select 1 from security_events`;
    const failuresBefore = await metric('webhook_signature_failures_total', { provider: 'rampco' });
    const stale = Math.floor(Date.now() / 1_000) - 3_600;
    const cases: [Promise<Sent>, number, string][] = [
      [send(deposit('bad-1'), { key: 'not-the-secret-at-all' }), 401, 'webhook/bad-signature'],
      [send(deposit('bad-2'), { signature: null }), 401, 'webhook/bad-signature'],
      [send(deposit('bad-3'), { signature: 't=abc,v1=zz' }), 401, 'webhook/bad-signature'],
      [send(deposit('bad-4'), { timestamp: stale }), 401, 'webhook/stale-timestamp'],
      [send('{"reference": "bad-5", '), 400, 'request/malformed-body'],
      [send(JSON.stringify({ reference: 'bad-6', accountId: account })), 400, 'request/validation'],
      [send(deposit('bad-7'), { provider: 'nobody' }), 404, 'webhook/unknown-provider'],
      [send(deposit('bad-8'), { provider: 'oldramp' }), 403, 'webhook/provider-disabled'],
    ];
    for (const [sent, status, type] of cases) {
      const result = await sent;
      expect(result.statusCode, type).toBe(status);
      expect(String(result.body.type)).toContain(type);
    }
    expect(await balance()).toBe(before);
    const events = await service.db.sql<{ kind: string; detailType: string }[]>`
      select kind, jsonb_typeof(detail) as "detailType" from security_events`;
    expect(events.length - eventsBefore.length).toBe(4);
    // Stored as documents, so operators can query `detail->>'reason'`.
    expect(new Set(events.map((event) => event.detailType))).toEqual(new Set(['object']));
    expect(await metric('webhook_signature_failures_total', { provider: 'rampco' })).toBe(failuresBefore + 4);
  });

  it('dead-letters a refusal with its problem and replays it to exactly one credit once the cause is fixed', async () => {
    const sql = service.db.sql;
    const [closing] = await sql<
      { id: string }[]
    >`insert into accounts (type, asset, status) values ('customer', 'XLM', 'closed') returning id`;
    const accountId = closing?.id ?? '';
    await issueReference(sql, { provider: 'rampco', reference: 'ref-dlq', accountId });
    const body = JSON.stringify({ reference: 'ref-dlq', accountId, asset: 'XLM', amount: '7' });
    const parked = await send(body);
    expect(parked.statusCode).toBe(422);
    expect(parked.contentType).toContain('application/problem+json');
    expect(parked.body).toMatchObject({ type: 'ledger/account-closed', webhookId: expect.any(String) });
    const token = await service.token('operator');
    const listed = await service.app.inject({
      method: 'GET',
      url: '/v1/webhooks/dead-letters',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(listed.json().items).toContainEqual(
      expect.objectContaining({
        id: parked.body.webhookId,
        error: `ledger/account-closed: account ${accountId} is closed`,
      }),
    );

    const replay = () =>
      service.app.inject({
        method: 'POST',
        url: `/v1/webhooks/dead-letters/${parked.body.webhookId}/replay`,
        headers: { authorization: `Bearer ${token}`, 'idempotency-key': randomUUID() },
      });
    expect((await replay()).statusCode).toBe(422);
    await sql`update accounts set status = 'active' where id = ${accountId}::uuid`;
    const replayed = await replay();
    expect(replayed.statusCode).toBe(200);
    expect(replayed.json()).toMatchObject({ state: 'replayed', outcome: 'credited by operator-user' });
    const [row] = await sql<
      { state: string; attempts: number }[]
    >`select state, attempts from inbound_webhooks where id = ${String(parked.body.webhookId)}::uuid`;
    expect(row).toEqual({ state: 'replayed', attempts: 3 });
    expect(await credits('ref-dlq')).toBe(1);
    const twice = await replay();
    expect(twice.statusCode).toBe(409);
    expect(twice.json().type).toContain('webhook/not-dead-lettered');
    expect((await send(body)).statusCode).toBe(200);
    expect(await credits('ref-dlq')).toBe(1);
  });

  it('documents in OpenAPI every status the route answers, the problems as problem+json and Retry-After on 429 and 503', async () => {
    const spec = (await service.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const responses = spec.paths['/v1/webhooks/deposits/{provider}'].post.responses;
    expect(Object.keys(responses).sort()).toEqual(
      ['200', '201', '400', '401', '403', '404', '409', '413', '415', '422', '429', '503'].sort(),
    );
    for (const status of ['400', '401', '403', '404', '409', '413', '415', '422', '429', '503']) {
      expect(Object.keys(responses[status].content), status).toEqual(['application/problem+json']);
    }
    expect(responses['503'].headers['retry-after'].schema.type).toBe('integer');
    expect(responses['429'].headers['retry-after'].schema.type).toBe('integer');
  });
});
