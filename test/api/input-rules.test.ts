import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../src/platform/auth/roles.ts';
import { startTestService, type TestService } from '../support/service.ts';

/**
 * The input rules every route shares (docs/errors.md): one id pattern, one free-text rule, one
 * cursor decoder. Each case here reached PostgreSQL and came back as a 500 before.
 */

let service: TestService;
let account: string;
const id = '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17';

beforeAll(async () => {
  service = await startTestService();
  const [row] = await service.db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  account = row?.id ?? '';
});

afterAll(async () => {
  await service.close();
});

async function call(role: Role, method: 'GET' | 'POST', url: string, payload?: unknown) {
  const response = await service.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${await service.token(role)}`, 'idempotency-key': crypto.randomUUID() },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  return { status: response.statusCode, body: response.json(), headers: response.headers };
}

describe('ids', () => {
  const spellings = [`urn:uuid:${id}`, `URN:UUID:${id.toUpperCase()}`, id.toUpperCase(), `{${id}}`];

  it.each(spellings)('refuses %s in a path, a query and a body with a 400 naming the field', async (bad) => {
    const inPath = await call('viewer', 'GET', `/v1/accounts/${encodeURIComponent(bad)}`);
    expect(inPath).toMatchObject({
      status: 400,
      body: { type: 'request/validation', detail: 'invalid params.id' },
    });
    const inQuery = await call('viewer', 'GET', `/v1/payouts?sourceAccountId=${encodeURIComponent(bad)}`);
    expect(inQuery).toMatchObject({ status: 400, body: { detail: 'invalid query.sourceAccountId' } });
    const inBody = await call('service', 'POST', '/v1/transfers', {
      sourceAccountId: account,
      destinationAccountId: bad,
      amount: '1',
    });
    expect(inBody).toMatchObject({ status: 400, body: { detail: 'invalid body.destinationAccountId' } });
  });
});

describe('free text', () => {
  const nul = 'a\u0000b';
  const surrogate = 'a\ud800b';
  const cases: [string, Role, string, (text: string) => unknown, string][] = [
    [
      'ownerRef',
      'service',
      '/v1/accounts',
      (text) => ({ type: 'customer', asset: 'XLM', ownerRef: text }),
      'body.ownerRef',
    ],
    ['an asset', 'service', '/v1/accounts', (text) => ({ type: 'customer', asset: text }), 'body.asset'],
    [
      'a transfer reference',
      'service',
      '/v1/transfers',
      (text) => ({ sourceAccountId: account, destinationAccountId: id, amount: '1', reference: text }),
      'body.reference',
    ],
    ['a freeze reason', 'operator', '/internal/modes/freeze', (text) => ({ reason: text }), 'body.reason'],
    [
      'an evidenceRef',
      'admin',
      '/v1/adjustments',
      (text) => ({
        entries: [
          { accountId: account, amount: '1' },
          { accountId: id, amount: '-1' },
        ],
        reason: 'correction',
        evidenceRef: text,
      }),
      'body.evidenceRef',
    ],
    [
      'an endpoint description',
      'admin',
      '/v1/webhook-endpoints',
      (text) => ({
        url: 'https://merchant.example/hooks',
        eventTypes: ['payout.settled'],
        ownerRef: null,
        description: text,
      }),
      'body.description',
    ],
    [
      'a memo value',
      'service',
      '/v1/payouts',
      (text) => ({
        sourceAccountId: account,
        destination: 'GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7',
        asset: 'XLM',
        amount: '1',
        memo: { type: 'text', value: text },
      }),
      'body.memo.value',
    ],
  ];

  it.each(cases)(
    'refuses a NUL or a lone surrogate in %s with a 400 naming it',
    async (_name, role, url, body, field) => {
      for (const text of [nul, surrogate]) {
        const response = await call(role, 'POST', url, body(text));
        expect(response).toMatchObject({
          status: 400,
          body: { type: 'request/validation', errors: [{ field }] },
        });
      }
    },
  );
});

describe('cursors', () => {
  const crafted = [
    Buffer.from(`+275760-09-13T00:00:00.000Z|${id}`).toString('base64url'),
    Buffer.from(`2024-01-01T00:00:00.000Z|${'-'.repeat(36)}`).toString('base64url'),
  ];

  it.each(['/v1/payouts', '/v1/approvals'])(
    '%s refuses a crafted cursor with request/invalid-cursor',
    async (path) => {
      for (const cursor of crafted) {
        const response = await call('admin', 'GET', `${path}?cursor=${cursor}`);
        expect(response).toMatchObject({ status: 400, body: { type: 'request/invalid-cursor' } });
      }
    },
  );
});

describe('a dependency that is not there', () => {
  it('answers a proof check with no reachable Stellar network with a 503 and Retry-After', async () => {
    const response = await call('service', 'POST', '/v1/deposits/verify-proof', {
      transactionHash: 'a'.repeat(64),
      accountId: account,
      asset: 'XLM',
      amount: '1',
    });
    expect(response).toMatchObject({ status: 503, body: { type: 'service/unavailable' } });
    expect(response.headers['retry-after']).toBe('1');
  });
});
