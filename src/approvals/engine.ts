import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { recordOnOpenIncidents } from '../incidents/service.ts';
import { assert } from '../platform/assert.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { payloadHash } from './canonical.ts';
import {
  insertProposal,
  insertReview,
  type ProposalRow,
  type ProposalState,
  type ReviewRow,
  selectExpiredPendingIds,
  selectProposal,
  selectProposalForUpdate,
  selectProposalPage,
  selectReviews,
  updateProposalState,
} from './data.ts';
import { approvalTransitions } from './metrics.ts';

export type Payload = Record<string, unknown>;
export type ActionContext = {
  proposalId: string;
  proposer: string;
  approvers: readonly string[];
  requestId: string | undefined;
};

/**
 * A manual money move that needs a second person. `validate` runs when the proposal is made and
 * again right before execution; `execute` runs inside the approving transaction, so the money
 * moves if and only if the proposal becomes `executed`.
 */
export type ProposalAction = {
  name: string;
  approvalsRequired: number;
  validate(payload: unknown): Payload;
  execute(tx: Tx, payload: Payload, context: ActionContext): Promise<Payload>;
  /**
   * Runs inside the transaction that rejects or expires the proposal, for an action that holds
   * something while it waits (a large payout holds its amount in clearing until approved).
   */
  closed?(tx: Tx, payload: Payload, context: ClosedContext): Promise<void>;
};

export type ClosedContext = {
  proposalId: string;
  outcome: 'rejected' | 'expired';
  actor: string;
  requestId: string | undefined;
};

export type ProposalView = ProposalRow & { reviews: ReviewRow[] };

export type ApprovalLimits = { ttlSecondsDefault: number; ttlSecondsMax: number };
export const expireBatchMax = 100;
export const listPageMax = 100;

type Reviewed = { kind: 'done'; view: ProposalView } | { kind: 'expired' };

export class Approvals {
  readonly #actions = new Map<string, ProposalAction>();
  readonly #limits: ApprovalLimits;

  constructor(limits: ApprovalLimits) {
    this.#limits = limits;
  }

  register(action: ProposalAction): void {
    assert(!this.#actions.has(action.name), `proposal action ${action.name} registered twice`);
    this.#actions.set(action.name, action);
  }

  #action(name: string): ProposalAction {
    const action = this.#actions.get(name);
    assert(action !== undefined, `no proposal action named ${name}`);
    return action;
  }

  /** Records a proposal inside the caller's transaction (with whatever else the caller writes). */
  async propose(
    tx: Tx,
    input: {
      action: string;
      payload: unknown;
      proposer: string;
      reason: string;
      ttlSeconds?: number;
      requestId?: string;
    },
  ): Promise<ProposalView> {
    const action = this.#action(input.action);
    const payload = action.validate(input.payload);
    const ttlSeconds = input.ttlSeconds ?? this.#limits.ttlSecondsDefault;
    if (ttlSeconds < 1 || ttlSeconds > this.#limits.ttlSecondsMax) {
      throw new DomainError(
        'request/validation',
        `ttl must be between 1 and ${this.#limits.ttlSecondsMax} seconds`,
      );
    }
    const row = await insertProposal(tx, {
      id: randomUUID(),
      action: action.name,
      payload,
      payloadHash: payloadHash(payload),
      proposer: input.proposer,
      reason: input.reason,
      approvalsRequired: action.approvalsRequired,
      ttlSeconds,
    });
    await appendAudit(tx, {
      actor: input.proposer,
      action: 'approval.proposed',
      subjectType: 'proposal',
      subjectId: row.id,
      after: {
        action: row.action,
        payloadHash: row.payloadHash,
        reason: row.reason,
        expiresAt: row.expiresAt,
      },
      requestId: input.requestId,
    });
    await recordProposalEvent(tx, 'proposal_created', row, `proposed ${row.action}: ${row.reason}`, {
      name: input.proposer,
      requestId: input.requestId,
    });
    approvalTransitions.inc({ action: row.action, transition: 'proposed' });
    return { ...row, reviews: [] };
  }

  async approve(
    sql: Sql,
    input: { id: string; reviewer: string; payloadHash: string; reason?: string; requestId?: string },
  ): Promise<ProposalView> {
    return this.#review(sql, input.id, async (tx, proposal) => {
      if (proposal.proposer === input.reviewer) {
        throw new DomainError('approvals/self-approval', 'the proposer cannot approve their own proposal');
      }
      assertPayloadIntact(proposal, input.payloadHash);
      const inserted = await insertReview(tx, {
        proposalId: proposal.id,
        reviewer: input.reviewer,
        decision: 'approve',
        payloadHash: proposal.payloadHash,
        reason: input.reason ?? null,
      });
      if (!inserted)
        throw new DomainError(
          'approvals/already-reviewed',
          `${input.reviewer} has already reviewed this proposal`,
        );
      await appendAudit(tx, {
        actor: input.reviewer,
        action: 'approval.approved',
        subjectType: 'proposal',
        subjectId: proposal.id,
        after: { payloadHash: proposal.payloadHash, reason: input.reason ?? null },
        requestId: input.requestId,
      });
      approvalTransitions.inc({ action: proposal.action, transition: 'approved' });
      await recordProposalEvent(tx, 'proposal_reviewed', proposal, `approved ${proposal.action}`, {
        name: input.reviewer,
        requestId: input.requestId,
      });
      const reviews = await selectReviews(tx, proposal.id);
      const approvers = reviews
        .filter((review) => review.decision === 'approve' && review.payloadHash === proposal.payloadHash)
        .map((review) => review.reviewer);
      if (approvers.length >= proposal.approvalsRequired) {
        await this.#execute(tx, proposal, approvers, input.requestId);
      }
    });
  }

  async reject(
    sql: Sql,
    input: { id: string; reviewer: string; reason: string; requestId?: string },
  ): Promise<ProposalView> {
    return this.#review(sql, input.id, async (tx, proposal) => {
      const inserted = await insertReview(tx, {
        proposalId: proposal.id,
        reviewer: input.reviewer,
        decision: 'reject',
        payloadHash: proposal.payloadHash,
        reason: input.reason,
      });
      if (!inserted)
        throw new DomainError(
          'approvals/already-reviewed',
          `${input.reviewer} has already reviewed this proposal`,
        );
      const changed = await updateProposalState(tx, proposal.id, ['pending'], 'rejected');
      assert(changed === 1, 'locked pending proposal did not move to rejected');
      await appendAudit(tx, {
        actor: input.reviewer,
        action: 'approval.rejected',
        subjectType: 'proposal',
        subjectId: proposal.id,
        before: { state: 'pending' },
        after: { state: 'rejected', reason: input.reason },
        requestId: input.requestId,
      });
      await this.#closed(tx, proposal, {
        proposalId: proposal.id,
        outcome: 'rejected',
        actor: input.reviewer,
        requestId: input.requestId,
      });
      approvalTransitions.inc({ action: proposal.action, transition: 'rejected' });
      await recordProposalEvent(
        tx,
        'proposal_reviewed',
        proposal,
        `rejected ${proposal.action}: ${input.reason}`,
        { name: input.reviewer, requestId: input.requestId },
      );
    });
  }

  /** Marks pending proposals past their expiry as expired; returns how many. */
  async expireDue(sql: Sql): Promise<number> {
    return withTransaction(sql, async (tx) => {
      const ids = await selectExpiredPendingIds(tx, expireBatchMax);
      for (const id of ids) await this.#expire(tx, id);
      return ids.length;
    });
  }

  async show(db: Executor, id: string): Promise<ProposalView> {
    const proposal = await selectProposal(db, id);
    if (!proposal) throw new DomainError('approvals/not-found', `no proposal ${id}`);
    return { ...proposal, reviews: await selectReviews(db, id) };
  }

  async list(
    db: Executor,
    filter: { state: ProposalState | undefined; limit: number; after?: { createdAt: Date; id: string } },
  ): Promise<ProposalRow[]> {
    return selectProposalPage(db, {
      state: filter.state,
      afterCreatedAt: filter.after?.createdAt,
      afterId: filter.after?.id,
      limit: Math.min(filter.limit, listPageMax),
    });
  }

  /**
   * Runs one review under the proposal's row lock, so reviews of one proposal are serialised and
   * a proposal executes at most once. An expired proposal is marked expired (and that commits)
   * before the review is refused.
   */
  async #review(
    sql: Sql,
    id: string,
    work: (tx: Tx, proposal: ProposalRow) => Promise<void>,
  ): Promise<ProposalView> {
    const reviewed = await withTransaction(sql, async (tx): Promise<Reviewed> => {
      const proposal = await selectProposalForUpdate(tx, id);
      if (!proposal) throw new DomainError('approvals/not-found', `no proposal ${id}`);
      if (proposal.state === 'pending' && proposal.expiresAt.getTime() <= Date.now()) {
        await this.#expire(tx, id);
        return { kind: 'expired' };
      }
      if (proposal.state !== 'pending') {
        throw new DomainError(
          'approvals/not-pending',
          `the proposal is ${proposal.state}; only pending proposals can be reviewed`,
          {
            state: proposal.state,
          },
        );
      }
      await work(tx, proposal);
      return { kind: 'done', view: await this.show(tx, id) };
    });
    if (reviewed.kind === 'expired') throw new DomainError('approvals/expired', 'the proposal has expired');
    return reviewed.view;
  }

  async #execute(
    tx: Tx,
    proposal: ProposalRow,
    approvers: readonly string[],
    requestId: string | undefined,
  ): Promise<void> {
    const action = this.#action(proposal.action);
    const approved = await updateProposalState(tx, proposal.id, ['pending'], 'approved');
    assert(approved === 1, 'locked pending proposal did not move to approved');
    const payload = action.validate(proposal.payload);
    const result = await action.execute(tx, payload, {
      proposalId: proposal.id,
      proposer: proposal.proposer,
      approvers,
      requestId,
    });
    const executed = await updateProposalState(tx, proposal.id, ['approved'], 'executed', result);
    assert(executed === 1, 'approved proposal did not move to executed');
    await appendAudit(tx, {
      actor: approvers[approvers.length - 1] ?? 'unknown',
      action: 'approval.executed',
      subjectType: 'proposal',
      subjectId: proposal.id,
      after: { action: proposal.action, approvers, result },
      requestId,
    });
    approvalTransitions.inc({ action: proposal.action, transition: 'executed' });
    await recordProposalEvent(
      tx,
      'proposal_executed',
      proposal,
      `executed ${proposal.action}, approved by ${approvers.join(', ')}`,
      { name: approvers[approvers.length - 1] ?? 'unknown', requestId },
    );
  }

  async #closed(tx: Tx, proposal: ProposalRow, context: ClosedContext): Promise<void> {
    const action = this.#action(proposal.action);
    if (action.closed) await action.closed(tx, action.validate(proposal.payload), context);
  }

  async #expire(tx: Tx, id: string): Promise<void> {
    const changed = await updateProposalState(tx, id, ['pending'], 'expired');
    if (changed === 0) return;
    const proposal = await selectProposal(tx, id);
    if (proposal) {
      await this.#closed(tx, proposal, {
        proposalId: id,
        outcome: 'expired',
        actor: 'system',
        requestId: undefined,
      });
    }
    await appendAudit(tx, {
      actor: 'system',
      action: 'approval.expired',
      subjectType: 'proposal',
      subjectId: id,
      before: { state: 'pending' },
      after: { state: 'expired' },
    });
    approvalTransitions.inc({ action: proposal?.action ?? 'unknown', transition: 'expired' });
  }
}

/** A proposal's step on every open incident's timeline, in the step's transaction. */
async function recordProposalEvent(
  tx: Tx,
  kind: 'proposal_created' | 'proposal_reviewed' | 'proposal_executed',
  proposal: ProposalRow,
  summary: string,
  actor: { name: string; requestId: string | undefined },
): Promise<void> {
  await recordOnOpenIncidents(
    tx,
    { kind, source: 'system', summary, detail: { proposalId: proposal.id, action: proposal.action } },
    actor,
  );
}

/**
 * The approval is bound to the exact payload: the reviewer must name the hash they reviewed, and
 * the stored payload must still hash to the stored hash (a row edited behind the service's back,
 * even directly in SQL, fails here and nothing executes).
 */
function assertPayloadIntact(proposal: ProposalRow, reviewedHash: string): void {
  if (reviewedHash !== proposal.payloadHash) {
    throw new DomainError(
      'approvals/payload-mismatch',
      'the payload hash you reviewed is not the proposal’s payload hash',
    );
  }
  if (payloadHash(proposal.payload) !== proposal.payloadHash) {
    throw new DomainError(
      'approvals/payload-mismatch',
      'the stored payload no longer matches its hash; it was altered',
    );
  }
}
