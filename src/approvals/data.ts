import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';

export const proposalStates = ['pending', 'approved', 'executed', 'rejected', 'expired'] as const;
export type ProposalState = (typeof proposalStates)[number];

export type ProposalRow = {
  id: string;
  action: string;
  payload: unknown;
  payloadHash: string;
  proposer: string;
  reason: string;
  approvalsRequired: number;
  state: ProposalState;
  createdAt: Date;
  expiresAt: Date;
  decidedAt: Date | null;
  executedAt: Date | null;
  result: unknown;
};

export type ReviewRow = {
  reviewer: string;
  decision: 'approve' | 'reject';
  payloadHash: string;
  reason: string | null;
  createdAt: Date;
};

const proposalColumns = (db: Executor) => db`
  id, action, payload, payload_hash as "payloadHash", proposer, reason,
  approvals_required as "approvalsRequired", state, created_at as "createdAt", expires_at as "expiresAt",
  decided_at as "decidedAt", executed_at as "executedAt", result`;

export async function insertProposal(
  db: Executor,
  proposal: {
    id: string;
    action: string;
    payload: unknown;
    payloadHash: string;
    proposer: string;
    reason: string;
    approvalsRequired: number;
    ttlSeconds: number;
  },
): Promise<ProposalRow> {
  const [row] = await db<ProposalRow[]>`
    insert into proposals (id, action, payload, payload_hash, proposer, reason, approvals_required, expires_at)
    values (
      ${proposal.id}::uuid, ${proposal.action}::text, ${db.json(proposal.payload as never)}::jsonb,
      ${proposal.payloadHash}::text, ${proposal.proposer}::text, ${proposal.reason}::text,
      ${proposal.approvalsRequired}::int, now() + make_interval(secs => ${proposal.ttlSeconds}::int)
    )
    returning ${proposalColumns(db)}`;
  assert(row, 'insert into proposals returned no row');
  return row;
}

export async function selectProposal(db: Executor, id: string): Promise<ProposalRow | undefined> {
  const [row] = await db<ProposalRow[]>`select ${proposalColumns(db)} from proposals where id = ${id}::uuid`;
  return row;
}

/** Locks the proposal for the rest of the caller's transaction: reviews of one proposal queue. */
export async function selectProposalForUpdate(db: Executor, id: string): Promise<ProposalRow | undefined> {
  const [row] = await db<ProposalRow[]>`
    select ${proposalColumns(db)} from proposals where id = ${id}::uuid for update`;
  return row;
}

/** Pages order by creation time at millisecond precision (what a cursor can carry), then id. */
export async function selectProposalPage(
  db: Executor,
  filter: {
    state: ProposalState | undefined;
    afterCreatedAt: Date | undefined;
    afterId: string | undefined;
    limit: number;
  },
): Promise<ProposalRow[]> {
  return db<ProposalRow[]>`
    select ${proposalColumns(db)} from proposals
    where (${filter.state ?? null}::text is null or state = ${filter.state ?? null}::text)
      and (${filter.afterCreatedAt ?? null}::timestamptz is null
           or (date_trunc('milliseconds', created_at), id)
              > (${filter.afterCreatedAt ?? null}::timestamptz, ${filter.afterId ?? null}::uuid))
    order by date_trunc('milliseconds', created_at), id
    limit ${filter.limit}::int`;
}

export async function selectReviews(db: Executor, proposalId: string): Promise<ReviewRow[]> {
  return db<ReviewRow[]>`
    select reviewer, decision, payload_hash as "payloadHash", reason, created_at as "createdAt"
    from proposal_reviews where proposal_id = ${proposalId}::uuid order by created_at`;
}

export async function insertReview(
  db: Executor,
  review: {
    proposalId: string;
    reviewer: string;
    decision: 'approve' | 'reject';
    payloadHash: string;
    reason: string | null;
  },
): Promise<boolean> {
  const rows = await db`
    insert into proposal_reviews (proposal_id, reviewer, decision, payload_hash, reason)
    values (${review.proposalId}::uuid, ${review.reviewer}::text, ${review.decision}::text,
            ${review.payloadHash}::text, ${review.reason}::text)
    on conflict (proposal_id, reviewer) do nothing
    returning reviewer`;
  return rows.length === 1;
}

/** Moves a proposal between states, guarded by the states it may leave; returns rows changed. */
export async function updateProposalState(
  db: Executor,
  id: string,
  from: readonly ProposalState[],
  to: ProposalState,
  result: unknown = null,
): Promise<number> {
  const outcome = await db`
    update proposals set
      state = ${to}::text,
      decided_at = case when ${to}::text in ('approved', 'rejected', 'expired') then now() else decided_at end,
      executed_at = case when ${to}::text = 'executed' then now() else executed_at end,
      result = coalesce(${result === null ? null : db.json(result as never)}::jsonb, result)
    where id = ${id}::uuid and state = any(${from as string[]}::text[])`;
  return outcome.count;
}

/** Pending proposals past their expiry, oldest first, bounded per run. */
export async function selectExpiredPendingIds(db: Executor, limit: number): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from proposals where state = 'pending' and expires_at <= now()
    order by expires_at limit ${limit}::int for update skip locked`;
  return rows.map((row) => row.id);
}
