import { openStates } from '../payouts/states.ts';
import { assert } from '../platform/assert.ts';
import type { Executor, Tx } from '../platform/db/types.ts';

/** Read-only SQL behind the triage library (plus the one snapshot insert). */

export type PayoutStateCount = { state: string; count: number; oldestCreatedAt: Date };

/** Non-terminal payouts per state, from the `payouts_by_state` index: cost follows the live set. */
export async function selectOpenPayoutCounts(db: Executor): Promise<PayoutStateCount[]> {
  return db<PayoutStateCount[]>`
    select state, count(*)::int as count, min(created_at) as "oldestCreatedAt"
    from payouts where state = any(${openStates}::text[])
    group by state order by state`;
}

export type StuckPayoutRow = {
  id: string;
  state: string;
  stateReason: string;
  asset: string;
  amountMinor: bigint;
  destination: string;
  createdAt: Date;
  updatedAt: Date;
  attempts: number;
  liveHash: string | null;
};

export async function selectStuckPayouts(
  db: Executor,
  olderThanSeconds: number,
  limit: number,
): Promise<StuckPayoutRow[]> {
  return db<StuckPayoutRow[]>`
    select p.id, p.state, p.state_reason as "stateReason", p.asset, p.amount_minor as "amountMinor",
           p.destination, p.created_at as "createdAt", p.updated_at as "updatedAt",
           (select count(*)::int from settlement_attempt_payouts ap where ap.payout_id = p.id) as attempts,
           (select a.hash from settlement_attempt_payouts ap join settlement_attempts a on a.id = ap.attempt_id
             where ap.payout_id = p.id and ap.live) as "liveHash"
    from payouts p
    where p.state = any(${openStates}::text[])
      and p.created_at < now() - make_interval(secs => ${olderThanSeconds}::int)
    order by p.created_at, p.id
    limit ${limit}::int`;
}

export async function countStuckPayouts(db: Executor, olderThanSeconds: number): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from payouts
    where state = any(${openStates}::text[])
      and created_at < now() - make_interval(secs => ${olderThanSeconds}::int)`;
  return row?.count ?? 0;
}

/** Per asset, the sum of every account's balance: the ledger's cheap zero-sum check. */
export async function selectBalanceSums(db: Executor): Promise<{ asset: string; sumMinor: bigint }[]> {
  return db<{ asset: string; sumMinor: bigint }[]>`
    select asset, sum(balance_minor)::bigint as "sumMinor" from accounts group by asset order by asset`;
}

export async function selectSystemBalances(
  db: Executor,
  type: string,
): Promise<{ accountId: string; asset: string; balanceMinor: bigint }[]> {
  return db<{ accountId: string; asset: string; balanceMinor: bigint }[]>`
    select id as "accountId", asset, balance_minor as "balanceMinor" from accounts
    where type = ${type}::text order by asset`;
}

export type AuditRow = {
  id: bigint;
  occurredAt: Date;
  actor: string;
  action: string;
  before: unknown;
  after: unknown;
  sealed: boolean;
};

export async function selectAuditForSubject(
  db: Executor,
  subjectType: string,
  subjectId: string,
  limit: number,
): Promise<AuditRow[]> {
  return db<AuditRow[]>`
    select id, occurred_at as "occurredAt", actor, action, before, after, hash is not null as sealed
    from audit_log where subject_type = ${subjectType}::text and subject_id = ${subjectId}::text
    order by id limit ${limit}::int`;
}

export async function selectJournalsForPayout(
  db: Executor,
  payoutId: string,
): Promise<{ journalId: string; kind: string; createdAt: Date }[]> {
  return db<{ journalId: string; kind: string; createdAt: Date }[]>`
    select j.id as "journalId", j.kind, j.created_at as "createdAt"
    from payouts p join journal_transactions j on j.id in (p.accept_journal_id, p.final_journal_id)
    where p.id = ${payoutId}::uuid order by j.created_at`;
}

export async function countPendingProposals(db: Executor): Promise<number> {
  const [row] = await db<
    { count: number }[]
  >`select count(*)::int as count from proposals where state = 'pending'`;
  return row?.count ?? 0;
}

export async function insertSnapshot(
  tx: Tx,
  snapshot: {
    id: string;
    incidentRef: string | null;
    incidentId: string | null;
    takenBy: string;
    content: unknown;
  },
): Promise<Date> {
  const [row] = await tx<{ takenAt: Date }[]>`
    insert into incident_snapshots (id, incident_ref, incident_id, taken_by, content)
    values (${snapshot.id}::uuid, ${snapshot.incidentRef}::text, ${snapshot.incidentId}::uuid,
            ${snapshot.takenBy}::text, ${tx.json(snapshot.content as Parameters<typeof tx.json>[0])}::jsonb)
    returning taken_at as "takenAt"`;
  assert(row, 'snapshot insert returned no row');
  return row.takenAt;
}

export type SnapshotHeadRow = {
  id: string;
  incidentRef: string | null;
  incidentId: string | null;
  takenBy: string;
  takenAt: Date;
};
export type SnapshotRow = SnapshotHeadRow & { content: Record<string, unknown> };

const snapshotHeadColumns = (db: Executor) => db`
  id, incident_ref as "incidentRef", incident_id as "incidentId", taken_by as "takenBy", taken_at as "takenAt"`;

export async function selectSnapshot(db: Executor, id: string): Promise<SnapshotRow | undefined> {
  const [row] = await db<SnapshotRow[]>`
    select ${snapshotHeadColumns(db)}, content from incident_snapshots where id = ${id}::uuid`;
  return row;
}

/** Newest first, bounded: the snapshots listed on an incident's page. */
export async function selectSnapshotsOfIncident(
  db: Executor,
  incidentId: string,
  limit: number,
): Promise<SnapshotHeadRow[]> {
  return db<SnapshotHeadRow[]>`
    select ${snapshotHeadColumns(db)} from incident_snapshots where incident_id = ${incidentId}::uuid
    order by taken_at desc, id desc limit ${limit}::int`;
}
