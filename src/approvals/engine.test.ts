import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { DomainError } from '../platform/errors.ts';
import { payloadHash } from './canonical.ts';
import type { Approvals, ProposalAction } from './engine.ts';

let service: TestService;
let approvals: Approvals;

/** Test actions whose only effect is a row in test_effects, so "executed once" is countable. */
function effectAction(name: string, approvalsRequired: number): ProposalAction {
  return {
    name,
    approvalsRequired,
    validate: (payload) => {
      if (
        typeof payload !== 'object' ||
        payload === null ||
        typeof (payload as { note?: unknown }).note !== 'string'
      ) {
        throw new DomainError('request/validation', 'note is required');
      }
      return payload as Record<string, unknown>;
    },
    execute: async (tx, payload, context) => {
      await tx`insert into test_effects (proposal_id, note) values (${context.proposalId}::uuid, ${String(payload.note)}::text)`;
      return { applied: true };
    },
  };
}

beforeAll(async () => {
  service = await startTestService();
  await service.db.sql`create table test_effects (proposal_id uuid not null, note text not null)`;
  approvals = service.domains.approvals;
  approvals.register(effectAction('test.single', 1));
  approvals.register(effectAction('test.double', 2));
});

afterAll(async () => {
  await service.close();
});

async function effects(proposalId: string): Promise<number> {
  const [row] = await service.db.sql<{ count: number }[]>`
    select count(*)::int as count from test_effects where proposal_id = ${proposalId}::uuid`;
  return row?.count ?? 0;
}

async function propose(action: string, proposer = 'ada', ttlSeconds?: number) {
  return withTransaction(service.db.sql, (tx) =>
    approvals.propose(tx, {
      action,
      payload: { note: 'move it' },
      proposer,
      reason: 'test',
      ttlSeconds,
    }),
  );
}

async function refusal(work: Promise<unknown>): Promise<string> {
  const error = await work.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(DomainError);
  return (error as DomainError).type;
}

describe('the two-person rule', () => {
  it('refuses self-approval, in the engine and in the database', async () => {
    const proposal = await propose('test.single');
    const sql = service.db.sql;
    expect(
      await refusal(
        approvals.approve(sql, { id: proposal.id, reviewer: 'ada', payloadHash: proposal.payloadHash }),
      ),
    ).toBe('approvals/self-approval');
    await expect(
      sql`insert into proposal_reviews (proposal_id, reviewer, decision, payload_hash)
          values (${proposal.id}::uuid, 'ada', 'approve', ${proposal.payloadHash})`,
    ).rejects.toThrow(/cannot approve/);
    expect(await effects(proposal.id)).toBe(0);
  });

  it('accepts one review per person', async () => {
    const proposal = await propose('test.double');
    const sql = service.db.sql;
    const first = await approvals.approve(sql, {
      id: proposal.id,
      reviewer: 'bob',
      payloadHash: proposal.payloadHash,
    });
    expect(first.state).toBe('pending');
    expect(
      await refusal(
        approvals.approve(sql, { id: proposal.id, reviewer: 'bob', payloadHash: proposal.payloadHash }),
      ),
    ).toBe('approvals/already-reviewed');
    expect(await effects(proposal.id)).toBe(0);
    const second = await approvals.approve(sql, {
      id: proposal.id,
      reviewer: 'cy',
      payloadHash: proposal.payloadHash,
    });
    expect(second.state).toBe('executed');
    expect(await effects(proposal.id)).toBe(1);
  });

  it('makes a rejection final', async () => {
    const proposal = await propose('test.single');
    const sql = service.db.sql;
    const rejected = await approvals.reject(sql, {
      id: proposal.id,
      reviewer: 'bob',
      reason: 'wrong account',
    });
    expect(rejected.state).toBe('rejected');
    expect(
      await refusal(
        approvals.approve(sql, { id: proposal.id, reviewer: 'cy', payloadHash: proposal.payloadHash }),
      ),
    ).toBe('approvals/not-pending');
    expect(await effects(proposal.id)).toBe(0);
  });

  it('never executes an expired proposal', async () => {
    const proposal = await propose('test.single', 'ada', 1);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const sql = service.db.sql;
    expect(
      await refusal(
        approvals.approve(sql, { id: proposal.id, reviewer: 'bob', payloadHash: proposal.payloadHash }),
      ),
    ).toBe('approvals/expired');
    expect((await approvals.show(sql, proposal.id)).state).toBe('expired');
    expect(
      await refusal(
        approvals.approve(sql, { id: proposal.id, reviewer: 'cy', payloadHash: proposal.payloadHash }),
      ),
    ).toBe('approvals/not-pending');
    expect(await effects(proposal.id)).toBe(0);
  });

  it('expires overdue proposals in the background job', async () => {
    const proposal = await propose('test.single', 'ada', 1);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await approvals.expireDue(service.db.sql)).toBeGreaterThanOrEqual(1);
    expect((await approvals.show(service.db.sql, proposal.id)).state).toBe('expired');
  });

  it('binds approval to the payload: a payload edited in SQL after an approval never executes', async () => {
    const sql = service.db.sql;
    const proposal = await propose('test.double');
    await approvals.approve(sql, { id: proposal.id, reviewer: 'bob', payloadHash: proposal.payloadHash });
    await sql`update proposals set payload = ${sql.json({ note: 'move it elsewhere' })} where id = ${proposal.id}::uuid`;
    expect(
      await refusal(
        approvals.approve(sql, { id: proposal.id, reviewer: 'cy', payloadHash: proposal.payloadHash }),
      ),
    ).toBe('approvals/payload-mismatch');
    // Rewriting the hash as well does not help: bob approved the old hash, so one approval is missing.
    const forged = { note: 'move it elsewhere' };
    await sql`update proposals set payload_hash = ${payloadHash(forged)} where id = ${proposal.id}::uuid`;
    const after = await approvals.approve(sql, {
      id: proposal.id,
      reviewer: 'cy',
      payloadHash: payloadHash(forged),
    });
    expect(after.state).toBe('pending');
    expect(await effects(proposal.id)).toBe(0);
  });

  it('refuses an approval naming a different payload hash than the one stored', async () => {
    const proposal = await propose('test.single');
    const wrong = payloadHash({ note: 'something else' });
    expect(
      await refusal(
        approvals.approve(service.db.sql, { id: proposal.id, reviewer: 'bob', payloadHash: wrong }),
      ),
    ).toBe('approvals/payload-mismatch');
    expect(await effects(proposal.id)).toBe(0);
  });

  it('executes exactly once when two admins approve at the same moment', async () => {
    const sql = service.db.sql;
    for (let round = 0; round < 5; round += 1) {
      const proposal = await propose('test.single');
      const outcomes = await Promise.allSettled(
        ['bob', 'cy', 'dee'].map((reviewer) =>
          approvals.approve(sql, { id: proposal.id, reviewer, payloadHash: proposal.payloadHash }),
        ),
      );
      expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected')
          expect((outcome.reason as DomainError).type).toBe('approvals/not-pending');
      }
      expect(await effects(proposal.id)).toBe(1);
    }
  });

  it('records every step in the audit log', async () => {
    const sql = service.db.sql;
    const proposal = await propose('test.single');
    await approvals.approve(sql, { id: proposal.id, reviewer: 'bob', payloadHash: proposal.payloadHash });
    const rows = await sql<{ action: string; actor: string }[]>`
      select action, actor from audit_log where subject_type = 'proposal' and subject_id = ${proposal.id} order by id`;
    expect(rows).toEqual([
      { action: 'approval.proposed', actor: 'ada' },
      { action: 'approval.approved', actor: 'bob' },
      { action: 'approval.executed', actor: 'bob' },
    ]);
  });
});

describe('the approvals API', () => {
  it('lets only admins review, and reports the proposal with its hash', async () => {
    const proposal = await propose('test.single', 'ada');
    const url = `/v1/approvals/${proposal.id}/approve`;
    const payload = { payloadHash: proposal.payloadHash };
    for (const role of ['viewer', 'operator', 'service'] as const) {
      const response = await service.app.inject({
        method: 'POST',
        url,
        payload,
        headers: { authorization: `Bearer ${await service.token(role, 'bob')}` },
      });
      expect(response.statusCode).toBe(403);
    }
    const shown = await service.app.inject({
      method: 'GET',
      url: `/v1/approvals/${proposal.id}`,
      headers: { authorization: `Bearer ${await service.token('viewer')}` },
    });
    expect(shown.json()).toMatchObject({
      id: proposal.id,
      state: 'pending',
      payloadHash: proposal.payloadHash,
    });
    const self = await service.app.inject({
      method: 'POST',
      url,
      payload,
      headers: { authorization: `Bearer ${await service.token('admin', 'ada')}` },
    });
    expect(self.statusCode).toBe(403);
    expect(self.json().type).toBe('approvals/self-approval');
    const approved = await service.app.inject({
      method: 'POST',
      url,
      payload,
      headers: { authorization: `Bearer ${await service.token('admin', 'bob')}` },
    });
    expect(approved.statusCode).toBe(200);
    expect(approved.json().state).toBe('executed');
    expect(await effects(proposal.id)).toBe(1);
  });

  it('lists pending proposals with a cursor', async () => {
    const token = await service.token('operator');
    const first = await service.app.inject({
      method: 'GET',
      url: '/v1/approvals?state=pending&limit=1',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(first.statusCode).toBe(200);
    const page = first.json();
    expect(page.items).toHaveLength(1);
    expect(page.nextCursor).toEqual(expect.any(String));
    const second = await service.app.inject({
      method: 'GET',
      url: `/v1/approvals?state=pending&limit=1&cursor=${page.nextCursor}`,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(second.json().items[0]?.id).not.toBe(page.items[0].id);
    const bad = await service.app.inject({
      method: 'GET',
      url: '/v1/approvals?cursor=zzz',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(bad.statusCode).toBe(400);
  });
});
