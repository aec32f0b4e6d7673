import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundFromFees } from '../../test/support/ledger.ts';
import { callAs } from '../../test/support/payouts.ts';
import { runCli } from '../../test/support/process.ts';
import { startTestService, type TestService, testEnv } from '../../test/support/service.ts';
import type { Role } from '../platform/auth/roles.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { reversalProposalAction } from './reversals.ts';
import { postJournal } from './service.ts';

let service: TestService;
const waitAttemptsMax = 500;

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

const call = (method: 'GET' | 'POST', url: string, role: Role, subject: string, payload?: object) =>
  callAs(service, method, url, role, subject, payload);

async function customer(fundedMinor = 0n): Promise<string> {
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  const id = row?.id ?? '';
  if (fundedMinor > 0n) await fundFromFees(service.db.sql, id, fundedMinor);
  return id;
}

async function balance(id: string): Promise<bigint> {
  const [row] = await service.db.sql<{ balanceMinor: bigint }[]>`
    select balance_minor as "balanceMinor" from accounts where id = ${id}::uuid`;
  return row?.balanceMinor ?? -1n;
}

async function transfer(source: string, destination: string, amount: string): Promise<string> {
  const response = await call('POST', '/v1/transfers', 'service', 'backend', {
    sourceAccountId: source,
    destinationAccountId: destination,
    amount,
  });
  expect(response.statusCode, JSON.stringify(response.body)).toBe(201);
  return response.body.id;
}

async function propose(journalId: string, subject = 'ada') {
  return call('POST', `/v1/journals/${journalId}/reversals`, 'admin', subject, {
    reason: 'sent to the wrong customer',
  });
}

async function approve(proposal: { id: string; payloadHash: string }, subject = 'bob') {
  return call('POST', `/v1/approvals/${proposal.id}/approve`, 'admin', subject, {
    payloadHash: proposal.payloadHash,
  });
}

async function reversalsOf(journalId: string): Promise<{ id: string; reference: string }[]> {
  return service.db.sql<{ id: string; reference: string }[]>`
    select id, reference from journal_transactions where kind = 'reversal' and reverses_id = ${journalId}::uuid`;
}

/** Waits until a statement of this database waits for a row lock (the racing approval). */
async function waitForLockWaiter(): Promise<void> {
  for (let attempt = 0; attempt < waitAttemptsMax; attempt += 1) {
    const [row] = await service.db.sql<{ waiting: number }[]>`
      select count(*)::int as waiting from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    if ((row?.waiting ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the racing approval never waited for a lock');
}

async function proposalCount(): Promise<number> {
  const [row] = await service.db.sql<{ count: number }[]>`select count(*)::int as count from proposals`;
  return row?.count ?? -1;
}

describe('reversals under the two-person rule', () => {
  it('moves nothing until a second admin approves, then restores both balances with one linked, audited journal', async () => {
    const payer = await customer(10_000_000n);
    const payee = await customer();
    const transferId = await transfer(payer, payee, '0.4');
    expect([await balance(payer), await balance(payee)]).toEqual([6_000_000n, 4_000_000n]);

    const proposed = await propose(transferId);
    expect(proposed.statusCode, JSON.stringify(proposed.body)).toBe(202);
    const proposal = proposed.body;
    expect(proposal).toMatchObject({
      action: 'ledger.reversal',
      state: 'pending',
      proposer: 'ada',
      payload: { journalId: transferId },
    });
    expect(await reversalsOf(transferId)).toEqual([]);
    expect(await balance(payee)).toBe(4_000_000n);

    const self = await approve(proposal, 'ada');
    expect(self.statusCode).toBe(403);
    expect(self.body.type).toBe('approvals/self-approval');
    expect(await reversalsOf(transferId)).toEqual([]);

    const approved = await approve(proposal);
    expect(approved.statusCode, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body.state).toBe('executed');
    const [reversal, ...others] = await reversalsOf(transferId);
    expect(others).toEqual([]);
    expect(reversal?.reference).toBe(proposal.id);
    expect(approved.body.result).toEqual({ journalId: reversal?.id, reversesId: transferId });
    expect([await balance(payer), await balance(payee)]).toEqual([10_000_000n, 0n]);

    const audited = await service.db.sql<{ actor: string; after: Record<string, unknown>; same: boolean }[]>`
      select a.actor, a.after, a.occurred_at = j.created_at as same
      from audit_log a join journal_transactions j on j.id::text = a.subject_id
      where a.action = 'journal.reversed' and a.subject_id = ${reversal?.id ?? ''}`;
    expect(audited).toEqual([
      {
        actor: 'bob',
        after: { reversesId: transferId, proposalId: proposal.id, proposer: 'ada', approvers: ['bob'] },
        same: true,
      },
    ]);
    const verified = await runCli(['audit', 'verify'], await testEnv(service.db));
    expect(verified.code, verified.stderr).toBe(0);
  });

  it('reverses an adjustment, and refuses to reverse the reversal or to reverse the adjustment twice', async () => {
    const target = await customer();
    const [suspense] = await service.db.sql<{ id: string }[]>`
      select id from accounts where type = 'deposit_suspense' and asset = 'XLM'`;
    const adjusted = await call('POST', '/v1/adjustments', 'admin', 'ada', {
      entries: [
        { accountId: suspense?.id, amount: '-0.2' },
        { accountId: target, amount: '0.2' },
      ],
      reason: 'belongs to the customer',
      evidenceRef: 'ticket-1',
    });
    const adjustmentId = (await approve(adjusted.body)).body.result.journalId as string;
    expect(await balance(target)).toBe(2_000_000n);

    const reversed = await approve((await propose(adjustmentId)).body);
    expect(reversed.body.state).toBe('executed');
    expect(await balance(target)).toBe(0n);

    const before = await proposalCount();
    const twice = await propose(adjustmentId);
    expect(twice.statusCode).toBe(409);
    expect(twice.body.type).toBe('ledger/already-reversed');
    const ofReversal = await propose(reversed.body.result.journalId);
    expect(ofReversal.statusCode).toBe(422);
    expect(ofReversal.body.type).toBe('ledger/not-reversible');
    expect(await proposalCount()).toBe(before);

    // The database holds it too: a second journal naming the same reverses_id cannot commit.
    const [fees] = await service.db.sql<{ id: string }[]>`
      select id from accounts where type = 'fees' and asset = 'XLM'`;
    const bypass = withTransaction(service.db.sql, (tx) =>
      postJournal(tx, {
        kind: 'reversal',
        entries: [
          { accountId: fees?.id ?? '', amountMinor: -1n },
          { accountId: suspense?.id ?? '', amountMinor: 1n },
        ],
        reversesId: adjustmentId,
      }),
    );
    await expect(bypass).rejects.toMatchObject({ code: '23505' });
  });

  it('executes only one of two proposals approved at the same time', async () => {
    const payer = await customer(10_000_000n);
    const payee = await customer();
    const transferId = await transfer(payer, payee, '0.3');
    const first = (await propose(transferId, 'ada')).body;
    const second = (await propose(transferId, 'cy')).body;
    expect([first.state, second.state]).toEqual(['pending', 'pending']);

    const results = await Promise.all([approve(first, 'bob'), approve(second, 'dee')]);
    expect(results.map((result) => result.statusCode).sort()).toEqual([200, 409]);
    const refused = results.find((result) => result.statusCode === 409);
    expect(refused?.body.type).toBe('ledger/already-reversed');
    expect(await reversalsOf(transferId)).toHaveLength(1);
    expect([await balance(payer), await balance(payee)]).toEqual([10_000_000n, 0n]);
  });

  it('makes an approval that raced a reversal still committing wait for it, then refuses it', async () => {
    const payer = await customer(10_000_000n);
    const payee = await customer();
    const transferId = await transfer(payer, payee, '0.3');
    const first = (await propose(transferId, 'ada')).body;
    const second = (await propose(transferId, 'cy')).body;
    let racing: ReturnType<typeof approve> | undefined;
    // The first reversal executes and stays uncommitted while the second proposal is approved.
    await withTransaction(service.db.sql, async (tx) => {
      await reversalProposalAction().execute(
        tx,
        { journalId: transferId },
        { proposalId: first.id, proposer: 'ada', approvers: ['bob'], requestId: undefined },
      );
      racing = approve(second, 'dee');
      await waitForLockWaiter();
    });
    const raced = await racing;
    expect(raced?.statusCode, JSON.stringify(raced?.body)).toBe(409);
    expect(raced?.body.type).toBe('ledger/already-reversed');
    expect(await reversalsOf(transferId)).toHaveLength(1);
    expect([await balance(payer), await balance(payee)]).toEqual([10_000_000n, 0n]);
  });

  it('refuses at approval a reversal that would drive a customer negative, and moves nothing', async () => {
    const payer = await customer(10_000_000n);
    const payee = await customer();
    const elsewhere = await customer();
    const transferId = await transfer(payer, payee, '0.5');
    const proposal = (await propose(transferId)).body;
    await transfer(payee, elsewhere, '0.2');

    const refused = await approve(proposal);
    expect(refused.statusCode).toBe(422);
    expect(refused.body.type).toBe('ledger/insufficient-funds');
    expect(await reversalsOf(transferId)).toEqual([]);
    expect([await balance(payer), await balance(payee)]).toEqual([5_000_000n, 3_000_000n]);
    const shown = await call('GET', `/v1/approvals/${proposal.id}`, 'admin', 'bob');
    expect(shown.body).toMatchObject({ state: 'pending', reviews: [] });
  });

  it('refuses journals that are unknown or not transfers and adjustments, and bad input, creating no proposal', async () => {
    const funded = await customer();
    await fundFromFees(service.db.sql, funded, 1n);
    const [funding] = await service.db.sql<{ id: string }[]>`
      select j.id from journal_transactions j join entries e on e.journal_id = j.id
      where e.account_id = ${funded}::uuid and j.kind = 'test_funding'`;
    const before = await proposalCount();

    const unknown = await propose(randomUUID());
    expect(unknown.statusCode).toBe(404);
    expect(unknown.body.type).toBe('ledger/journal-not-found');
    const otherKind = await propose(funding?.id ?? '');
    expect(otherKind.statusCode).toBe(422);
    expect(otherKind.body.type).toBe('ledger/not-reversible');
    const notUuid = await propose('not-a-journal');
    expect(notUuid.statusCode).toBe(400);
    expect(notUuid.body.type).toBe('request/validation');
    for (const body of [{}, { reason: '' }, { reason: 'x', extra: 1 }]) {
      const bad = await call('POST', `/v1/journals/${funding?.id}/reversals`, 'admin', 'ada', body);
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
    }
    expect(await proposalCount()).toBe(before);
  });

  it('lets only admins propose a reversal', async () => {
    const payer = await customer(1_000_000n);
    const transferId = await transfer(payer, await customer(), '0.01');
    const before = await proposalCount();
    for (const role of ['viewer', 'operator', 'service'] as const) {
      const response = await call('POST', `/v1/journals/${transferId}/reversals`, role, 'x', { reason: 'r' });
      expect(response.statusCode).toBe(403);
    }
    const anonymous = await service.app.inject({
      method: 'POST',
      url: `/v1/journals/${transferId}/reversals`,
      payload: { reason: 'r' },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(anonymous.statusCode).toBe(401);
    expect(await proposalCount()).toBe(before);
  });

  it('settledesk ledger reverse proposes the reversal for a second admin', async () => {
    const payer = await customer(1_000_000n);
    const transferId = await transfer(payer, await customer(), '0.01');
    const env = await testEnv(service.db);
    const result = await runCli(
      ['--json', 'ledger', 'reverse', transferId.toUpperCase(), '--reason', 'wrong payee', '--as', 'ada'],
      env,
    );
    expect(result.code, result.stderr).toBe(0);
    const proposal = JSON.parse(result.stdout);
    expect(proposal).toMatchObject({
      action: 'ledger.reversal',
      proposer: 'ada',
      payload: { journalId: transferId },
    });
    const refused = await runCli(['ledger', 'reverse', 'nope', '--reason', 'r'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('UUID');
  });
});
