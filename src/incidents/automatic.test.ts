import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import type { Approvals } from '../approvals/engine.ts';
import { enterReadOnly, freezePayouts, proposeRelease, restoreStandardAction } from '../controls/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { DomainError } from '../platform/errors.ts';
import { changeStatus, declareIncident, getTimeline } from './service.ts';

/**
 * Payments mode changes, payout freezes and proposals land on every open incident's timeline in
 * the transaction of the change: a resolved incident gets nothing, a change that fails adds nothing.
 */

let service: TestService;
let approvals: Approvals;
const alice = { name: 'alice', requestId: undefined };

beforeAll(async () => {
  service = await startTestService();
  approvals = service.domains.approvals;
  approvals.register({
    name: 'test.failing',
    approvalsRequired: 1,
    validate: (payload) => payload as Record<string, unknown>,
    execute: async () => {
      throw new DomainError('request/validation', 'the action refuses at execution');
    },
  });
});

afterAll(async () => {
  await service.close();
});

async function kinds(id: string): Promise<string[]> {
  return (await getTimeline(service.db.sql, id, undefined, 500)).map((event) => event.kind);
}

/** A fresh open incident and a resolved one; returns their ids. */
async function pair(title: string): Promise<{ open: string; resolved: string }> {
  const sql = service.db.sql;
  const open = await declareIncident(sql, { title: `${title} open`, severity: 'P1' }, alice);
  const resolved = await declareIncident(sql, { title: `${title} resolved`, severity: 'P1' }, alice);
  await changeStatus(sql, resolved.id, 'resolved', undefined, alice);
  return { open: open.id, resolved: resolved.id };
}

describe('automatic timeline events', () => {
  it('records read_only, the freeze and the two-person restore on open incidents only', async () => {
    const sql = service.db.sql;
    const { open, resolved } = await pair('brakes');
    const resolvedBefore = await kinds(resolved);
    await enterReadOnly(sql, { name: 'ana' }, 'ledger imbalance');
    await freezePayouts(sql, { name: 'ana' }, 'hold payouts');
    const proposal = await proposeRelease(sql, approvals, restoreStandardAction, { name: 'ada' }, 'fixed');
    await approvals.approve(sql, { id: proposal.id, reviewer: 'bob', payloadHash: proposal.payloadHash });

    const events = await getTimeline(sql, open, undefined, 500);
    expect(events.map((event) => event.kind).slice(1)).toEqual([
      'payments_mode_changed',
      'payouts_freeze_changed',
      'proposal_created',
      'proposal_reviewed',
      'payments_mode_changed',
      'proposal_executed',
    ]);
    expect(events[1]).toMatchObject({
      source: 'system',
      actor: 'ana',
      summary: 'payments mode standard → read_only: ledger imbalance',
    });
    expect(events[2]?.detail).toEqual({ frozen: true, reason: 'hold payouts' });
    expect(events[3]?.detail).toEqual({ proposalId: proposal.id, action: restoreStandardAction });
    expect(events[5]?.summary).toBe(`payments mode read_only → standard: proposal ${proposal.id}`);
    expect(await kinds(resolved)).toEqual(resolvedBefore);
  });

  it('adds nothing for a change that does not happen: a brake already pulled, a refused review, an action that fails', async () => {
    const sql = service.db.sql;
    await freezePayouts(sql, { name: 'ana' }, 'first');
    const { open } = await pair('failures');
    const before = await kinds(open);

    await freezePayouts(sql, { name: 'ana' }, 'again');
    const own = await withTransaction(sql, (tx) =>
      approvals.propose(tx, { action: 'test.failing', payload: {}, proposer: 'ada', reason: 'try' }),
    );
    const afterProposal = await kinds(open);
    expect(afterProposal).toEqual([...before, 'proposal_created']);

    await expect(
      approvals.approve(sql, { id: own.id, reviewer: 'ada', payloadHash: own.payloadHash }),
    ).rejects.toMatchObject({ type: 'approvals/self-approval' });
    await expect(
      approvals.approve(sql, { id: own.id, reviewer: 'bob', payloadHash: own.payloadHash }),
    ).rejects.toMatchObject({ type: 'request/validation' });
    expect(await kinds(open)).toEqual(afterProposal);
  });

  it('adds nothing when the change itself rolls back', async () => {
    const sql = service.db.sql;
    const { open } = await pair('rollback');
    const before = await kinds(open);
    await expect(
      withTransaction(sql, async (tx) => {
        await approvals.propose(tx, {
          action: 'test.failing',
          payload: {},
          proposer: 'ada',
          reason: 'undone',
        });
        throw new DomainError('request/validation', 'the caller fails after proposing');
      }),
    ).rejects.toBeInstanceOf(DomainError);
    expect(await kinds(open)).toEqual(before);
  });
});
