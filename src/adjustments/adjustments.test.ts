import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundFromFees } from '../../test/support/ledger.ts';
import { runCli } from '../../test/support/process.ts';
import { startTestService, type TestService, testEnv } from '../../test/support/service.ts';

let service: TestService;
let customer: string;
let suspense: string;

beforeAll(async () => {
  service = await startTestService();
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  customer = row?.id ?? '';
  const [system] = await service.db.sql<
    { id: string }[]
  >`select id from accounts where type = 'deposit_suspense' and asset = 'XLM'`;
  suspense = system?.id ?? '';
  await fundFromFees(service.db.sql, customer, 50_000_000n);
});

afterAll(async () => {
  await service.close();
});

async function call(
  method: 'GET' | 'POST',
  url: string,
  role: 'viewer' | 'operator' | 'admin' | 'service',
  subject: string,
  payload?: object,
) {
  return service.app.inject({
    method,
    url,
    payload,
    headers: {
      authorization: `Bearer ${await service.token(role, subject)}`,
      ...(method === 'POST' ? { 'idempotency-key': randomUUID() } : {}),
    },
  });
}

const correction = () => ({
  entries: [
    { accountId: suspense, amount: '-1.5' },
    { accountId: customer, amount: '1.5' },
  ],
  reason: 'deposit parked in suspense belongs to this customer',
  evidenceRef: 'ticket-4711',
});

async function adjustmentJournals(): Promise<{ id: string; reference: string }[]> {
  return service.db.sql<{ id: string; reference: string }[]>`
    select id, reference from journal_transactions where kind = 'adjustment'`;
}

describe('manual ledger adjustments', () => {
  it('moves nothing until a second admin approves, then posts exactly one balanced journal transaction', async () => {
    const proposed = await call('POST', '/v1/adjustments', 'admin', 'ada', correction());
    expect(proposed.statusCode).toBe(202);
    const proposal = proposed.json();
    expect(proposal).toMatchObject({ action: 'ledger.adjustment', state: 'pending', proposer: 'ada' });
    expect(proposal.payload.entries[1].amount).toBe('1.5000000');
    expect(await adjustmentJournals()).toEqual([]);

    const self = await call('POST', `/v1/approvals/${proposal.id}/approve`, 'admin', 'ada', {
      payloadHash: proposal.payloadHash,
    });
    expect(self.statusCode).toBe(403);
    const approved = await call('POST', `/v1/approvals/${proposal.id}/approve`, 'admin', 'bob', {
      payloadHash: proposal.payloadHash,
    });
    expect(approved.statusCode).toBe(200);
    expect(approved.json().state).toBe('executed');
    const journals = await adjustmentJournals();
    expect(journals).toHaveLength(1);
    expect(journals[0]?.reference).toBe(proposal.id);
    const legs = await service.db.sql<{ amountMinor: bigint }[]>`
      select amount_minor as "amountMinor" from entries where journal_id = ${journals[0]?.id ?? ''}::uuid`;
    expect(legs.map((leg) => leg.amountMinor).sort()).toEqual([-15_000_000n, 15_000_000n]);
    const again = await call('POST', `/v1/approvals/${proposal.id}/approve`, 'admin', 'cy', {
      payloadHash: proposal.payloadHash,
    });
    expect(again.statusCode).toBe(409);
    expect(await adjustmentJournals()).toHaveLength(1);

    const actions = await service.db.sql<{ action: string }[]>`
      select action from audit_log where subject_id = ${proposal.id} or subject_id = ${journals[0]?.id ?? ''} order by id`;
    expect(actions.map((row) => row.action)).toEqual([
      'approval.proposed',
      'approval.approved',
      'ledger.adjusted',
      'approval.executed',
    ]);
    const verified = await runCli(['audit', 'verify'], await testEnv(service.db));
    expect(verified.code, verified.stderr).toBe(0);
  });

  it('refuses an unbalanced correction and creates no proposal', async () => {
    const before = await service.db.sql`select id from proposals`;
    const body = {
      ...correction(),
      entries: [
        { accountId: suspense, amount: '-1' },
        { accountId: customer, amount: '2' },
      ],
    };
    const response = await call('POST', '/v1/adjustments', 'admin', 'ada', body);
    expect(response.statusCode).toBe(422);
    expect(response.json().type).toBe('ledger/unbalanced');
    expect(await service.db.sql`select id from proposals`).toHaveLength(before.length);
  });

  it('lets only admins propose', async () => {
    for (const role of ['viewer', 'operator', 'service'] as const) {
      expect((await call('POST', '/v1/adjustments', role, 'x', correction())).statusCode).toBe(403);
    }
  });
});

describe('read_only mode', () => {
  it('refuses new transfers and adjustments with a 503 problem while reads keep working', async () => {
    const [other] = await service.db.sql<
      { id: string }[]
    >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
    expect(
      (await call('POST', '/internal/modes/read-only', 'operator', 'olga', { reason: 'drill' })).statusCode,
    ).toBe(200);
    const transfer = await call('POST', '/v1/transfers', 'service', 'backend', {
      sourceAccountId: customer,
      destinationAccountId: other?.id,
      amount: '1',
    });
    expect(transfer.statusCode).toBe(503);
    expect(transfer.json().type).toBe('payments/read-only');
    const adjustment = await call('POST', '/v1/adjustments', 'admin', 'ada', correction());
    expect(adjustment.statusCode).toBe(503);
    expect(adjustment.json().type).toBe('payments/read-only');
    const read = await call('GET', `/v1/accounts/${customer}`, 'viewer', 'vic');
    expect(read.statusCode).toBe(200);
    expect(read.json().balance).toBe('6.5000000');
  });
});
