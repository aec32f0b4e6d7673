import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../test/support/process.ts';
import { startTestService, type TestService, testEnv } from '../../test/support/service.ts';
import { updatePaymentsMode } from '../controls/data.ts';
import { signatureHeaderValue } from './signature.ts';

/**
 * Acceptance 1 of issue 19: a webhook signed with a valid secret credits the account of the
 * intent its reference was issued for, and nothing to an account, asset or reference it names
 * otherwise: those are held in deposit_suspense with an audit row and a finding.
 */

const secret = 'boundramp-secret-0000001';
const usdc = 'USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN';
let service: TestService;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTestService({ env: { DEPOSIT_WEBHOOK_SECRET_BOUNDRAMP: secret } });
  env = await testEnv(service.db, { DEPOSIT_WEBHOOK_SECRET_BOUNDRAMP: secret });
  await service.db.sql`insert into deposit_providers (name, kind) values ('boundramp', 'external')`;
  await service.db.sql`insert into assets (code) values (${usdc})`;
  await service.db.sql`select ledger_ensure_system_accounts(${usdc}::text)`;
});

afterAll(async () => {
  await service.close();
});

async function customer(asset = 'XLM'): Promise<string> {
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', ${asset}) returning id`;
  return row?.id ?? '';
}

async function intent(
  accountId: string,
  amount?: string,
): Promise<{ statusCode: number; body: Record<string, string> }> {
  const response = await service.app.inject({
    method: 'POST',
    url: '/v1/deposits/intents',
    payload: { accountId, provider: 'boundramp', ...(amount === undefined ? {} : { amount }) },
    headers: { authorization: `Bearer ${await service.token('service')}`, 'idempotency-key': randomUUID() },
  });
  return { statusCode: response.statusCode, body: response.json() };
}

async function reference(accountId: string, amount?: string): Promise<string> {
  const issued = await intent(accountId, amount);
  expect(issued.statusCode).toBe(201);
  return issued.body.reference ?? '';
}

type Payload = { reference: string; accountId: string; asset: string; amount: string };

async function send(payload: Payload): Promise<{ statusCode: number; body: Record<string, unknown> }> {
  const body = JSON.stringify(payload);
  const response = await service.app.inject({
    method: 'POST',
    url: '/v1/webhooks/deposits/boundramp',
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-webhook-signature': signatureHeaderValue(secret, Math.floor(Date.now() / 1_000), body),
    },
  });
  return { statusCode: response.statusCode, body: response.json() };
}

async function balance(accountId: string): Promise<bigint> {
  const [row] = await service.db.sql<
    { balance: bigint }[]
  >`select balance_minor as balance from accounts where id = ${accountId}::uuid`;
  return row?.balance ?? -1n;
}

async function suspenseBalance(asset: string): Promise<bigint> {
  const [row] = await service.db.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where type = 'deposit_suspense' and asset = ${asset}`;
  return row?.balance ?? -1n;
}

/** The suspense row, its audit row and its finding for one held deposit. */
async function heldRecord(depositId: string) {
  const [deposit] = await service.db.sql<{ reason: string; accountType: string; intentId: string | null }[]>`
    select d.suspense_reason as reason, a.type as "accountType", d.intent_id as "intentId"
    from deposits d join accounts a on a.id = d.account_id where d.id = ${depositId}::uuid`;
  const audits = await service.db.sql<{ actor: string; after: Record<string, unknown> }[]>`
    select actor, after from audit_log where action = 'deposit.suspense' and subject_id = ${depositId}`;
  const findings = await service.db.sql<{ evidence: Record<string, unknown> }[]>`
    select evidence from reconciliation_findings
    where kind = 'deposit_mismatch' and subject = ${depositId} and resolved_at is null`;
  return { deposit, audits, findings };
}

async function expectHeld(sent: { statusCode: number; body: Record<string, unknown> }, reason: string) {
  expect(sent.statusCode).toBe(200);
  expect(sent.body.outcome).toBe('held');
  const record = await heldRecord(String(sent.body.depositId));
  expect(record.deposit).toMatchObject({ reason, accountType: 'deposit_suspense' });
  expect(record.audits).toHaveLength(1);
  expect(record.audits[0]?.actor).toBe('provider:boundramp');
  expect(record.audits[0]?.after.reason).toBe(reason);
  expect(record.findings).toHaveLength(1);
  expect(record.findings[0]?.evidence).toMatchObject({ suspenseReason: reason, reason: 'held_in_suspense' });
  return record;
}

describe('provider deposits bound to intents', () => {
  it('credits the intent account, once, when the payload agrees with its intent', async () => {
    const alice = await customer();
    const ref = await reference(alice, '5');
    const first = await send({ reference: ref, accountId: alice, asset: 'XLM', amount: '5' });
    expect(first.statusCode).toBe(201);
    expect(first.body.outcome).toBe('credited');
    expect((await send({ reference: ref, accountId: alice, asset: 'XLM', amount: '5' })).body.outcome).toBe(
      'replay',
    );
    expect(await balance(alice)).toBe(50_000_000n);
  });

  it('holds a deposit naming another account than its intent: nothing to either account', async () => {
    const [alice, mallory] = [await customer(), await customer()];
    const ref = await reference(alice);
    const suspenseBefore = await suspenseBalance('XLM');
    const sent = await send({ reference: ref, accountId: mallory, asset: 'XLM', amount: '9' });
    const record = await expectHeld(sent, 'account_differs');
    expect(record.deposit?.intentId).not.toBeNull();
    expect(record.audits[0]?.after).toMatchObject({ namedAccountId: mallory, intentAccountId: alice });
    expect(await balance(mallory)).toBe(0n);
    expect(await balance(alice)).toBe(0n);
    expect((await suspenseBalance('XLM')) - suspenseBefore).toBe(90_000_000n);
    const again = await send({ reference: ref, accountId: mallory, asset: 'XLM', amount: '9' });
    expect(again.body).toMatchObject({ outcome: 'replay', depositId: sent.body.depositId });
    expect((await send({ reference: ref, accountId: alice, asset: 'XLM', amount: '9' })).statusCode).toBe(
      409,
    );
    expect(await balance(alice)).toBe(0n);
  });

  it('holds a deposit in another asset than its intent account holds', async () => {
    const alice = await customer();
    const usdcHolder = await customer(usdc);
    const ref = await reference(alice);
    const suspenseBefore = await suspenseBalance(usdc);
    await expectHeld(
      await send({ reference: ref, accountId: alice, asset: usdc, amount: '3' }),
      'asset_differs',
    );
    expect(await balance(alice)).toBe(0n);
    expect(await balance(usdcHolder)).toBe(0n);
    expect((await suspenseBalance(usdc)) - suspenseBefore).toBe(30_000_000n);
  });

  it('holds a deposit under a reference settledesk never issued, whatever account it names', async () => {
    const alice = await customer();
    const sent = await send({
      reference: `boundramp-${randomUUID()}`,
      accountId: alice,
      asset: 'XLM',
      amount: '2',
    });
    const record = await expectHeld(sent, 'unknown_reference');
    expect(record.deposit?.intentId).toBeNull();
    expect(await balance(alice)).toBe(0n);
  });

  it('holds a deposit of another amount than its intent fixed', async () => {
    const alice = await customer();
    const ref = await reference(alice, '10');
    await expectHeld(
      await send({ reference: ref, accountId: alice, asset: 'XLM', amount: '100' }),
      'amount_differs',
    );
    expect(await balance(alice)).toBe(0n);
  });

  it('in global read_only, credits a webhook of an issued intent and defers one of an unissued reference', async () => {
    const alice = await customer();
    const ref = await reference(alice);
    const unissued = `boundramp-${randomUUID()}`;
    await updatePaymentsMode(service.db.sql, 'read_only', 'test', 'incident');
    try {
      const existing = await send({ reference: ref, accountId: alice, asset: 'XLM', amount: '4' });
      expect(existing.statusCode).toBe(201);
      expect(existing.body.outcome).toBe('credited');
      const deferred = await send({ reference: unissued, accountId: alice, asset: 'XLM', amount: '4' });
      expect(deferred.statusCode).toBe(503);
      expect(deferred.body.type).toContain('payments/read-only');
    } finally {
      await updatePaymentsMode(service.db.sql, 'standard', 'test', 'over');
    }
    expect(await balance(alice)).toBe(40_000_000n);
  });

  it('a read_only provider takes no new intent, credits its issued references and holds the others', async () => {
    const alice = await customer();
    const ref = await reference(alice);
    await service.db.sql`update deposit_providers set mode = 'read_only' where name = 'boundramp'`;
    try {
      const refused = await intent(alice);
      expect(refused.statusCode).toBe(409);
      expect(refused.body.type).toContain('deposits/provider-not-accepting');
      expect((await send({ reference: ref, accountId: alice, asset: 'XLM', amount: '1' })).statusCode).toBe(
        201,
      );
      await expectHeld(
        await send({ reference: `boundramp-${randomUUID()}`, accountId: alice, asset: 'XLM', amount: '1' }),
        'unknown_reference',
      );
    } finally {
      await service.db.sql`update deposit_providers set mode = 'standard' where name = 'boundramp'`;
    }
    expect(await balance(alice)).toBe(10_000_000n);
  });

  it('refuses a fixed amount that does not parse, and one for the Stellar provider, issuing nothing', async () => {
    const alice = await customer();
    const before = await service.db.sql`select 1 from deposit_intents where account_id = ${alice}::uuid`;
    expect((await intent(alice, 'ten')).statusCode).toBe(400);
    const stellar = await service.app.inject({
      method: 'POST',
      url: '/v1/deposits/intents',
      payload: { accountId: alice, provider: 'stellar', amount: '1' },
      headers: { authorization: `Bearer ${await service.token('service')}`, 'idempotency-key': randomUUID() },
    });
    expect(stellar.statusCode).toBe(400);
    const after = await service.db.sql`select 1 from deposit_intents where account_id = ${alice}::uuid`;
    expect(after.length).toBe(before.length);
  });

  it('lists held deposits newest first with their reasons, paged by cursor (settledesk deposits suspense list)', async () => {
    const alice = await customer();
    const held = [];
    for (const amount of ['1.5', '2.5']) {
      const sent = await send({
        reference: `boundramp-${randomUUID()}`,
        accountId: alice,
        asset: 'XLM',
        amount,
      });
      held.push(String(sent.body.depositId));
    }
    const first = await runCli(['--json', 'deposits', 'suspense', 'list', '--limit', '1'], env);
    expect(first.code, first.stderr).toBe(0);
    const page = JSON.parse(first.stdout);
    expect(page.items).toEqual([
      expect.objectContaining({
        depositId: held[1],
        reason: 'unknown_reference',
        amount: '2.5000000',
        asset: 'XLM',
      }),
    ]);
    const second = await runCli(
      ['--json', 'deposits', 'suspense', 'list', '--limit', '1', '--cursor', page.nextCursor],
      env,
    );
    expect(JSON.parse(second.stdout).items[0]).toMatchObject({ depositId: held[0], amount: '1.5000000' });
    const refused = await runCli(['deposits', 'suspense', 'list', '--limit', '1000'], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--limit');
  });
});
