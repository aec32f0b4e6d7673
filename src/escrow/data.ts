import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';
import {
  type ExpiryOutcome,
  type HoldState,
  liveStates,
  openStates,
  type Transition,
  transitions,
} from './states.ts';

export type HoldRow = {
  id: string;
  payerAccountId: string;
  payeeAccountId: string;
  asset: string;
  precision: number;
  amountMinor: bigint;
  releasedMinor: bigint;
  refundedMinor: bigint;
  expiresAt: Date | null;
  expiryOutcome: ExpiryOutcome;
  reference: string | null;
  metadata: Record<string, string>;
  /** Set when another domain owns the hold (a stream): only that domain moves it. */
  managedBy: HoldManager | null;
  /** As stored; a live hold past its expiry is still `held`/`partially_released` here. */
  storedState: HoldState;
  /** What every reader sees: a live hold past its expiry is `expired` at once, swept or not. */
  state: HoldState;
  stateReason: string;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
};

/** The domains that may own a hold; escrow's own routes refuse to move or dispute such a hold. */
export const holdManagers = ['stream'] as const;
export type HoldManager = (typeof holdManagers)[number];

export type MovementRow = {
  kind: 'release' | 'refund';
  amountMinor: bigint;
  cause: 'request' | 'expiry' | 'dispute_resolution';
  journalId: string;
  /** A release to a Stellar address: the payout that pays it from the payee account. */
  payoutId: string | null;
  createdAt: Date;
};

export const disputeStates = ['open', 'resolved'] as const;

export type DisputeRow = {
  id: string;
  holdId: string;
  reason: string;
  evidenceRefs: string[];
  openedBy: string;
  state: (typeof disputeStates)[number];
  outcome: 'release' | 'refund' | 'split' | null;
  proposalId: string | null;
  createdAt: Date;
  resolvedAt: Date | null;
};

const live = liveStates as unknown as string[];

/** The expiry guard, in the one spelling every read and write uses: past `expires_at` at now(). */
const holdColumns = (db: Executor) => db`
  h.id, h.payer_account_id as "payerAccountId", h.payee_account_id as "payeeAccountId", h.asset, s.precision,
  h.amount_minor as "amountMinor", h.released_minor as "releasedMinor", h.refunded_minor as "refundedMinor",
  h.expires_at as "expiresAt", h.expiry_outcome as "expiryOutcome", h.reference, h.metadata, h.managed_by as "managedBy",
  h.state as "storedState",
  case when h.state = any(${live}::text[]) and h.expires_at <= now() then 'expired' else h.state end as state,
  case when h.state = any(${live}::text[]) and h.expires_at <= now()
       then 'expiresAt passed; the expiry outcome is due' else h.state_reason end as "stateReason",
  h.created_by as "createdBy", h.created_at as "createdAt", h.updated_at as "updatedAt"`;

export async function insertHold(
  db: Executor,
  hold: {
    id: string;
    payerAccountId: string;
    payeeAccountId: string;
    asset: string;
    amountMinor: bigint;
    expiresAt: Date | null;
    expiryOutcome: ExpiryOutcome;
    reference: string | null;
    metadata: Record<string, string>;
    createdBy: string;
    requestId: string | null;
    holdJournalId: string;
    managedBy: HoldManager | null;
  },
): Promise<void> {
  await db`
    insert into escrow_holds (id, payer_account_id, payee_account_id, asset, amount_minor, expires_at,
                              expiry_outcome, reference, metadata, state, state_reason, created_by, request_id,
                              hold_journal_id, managed_by)
    values (${hold.id}::uuid, ${hold.payerAccountId}::uuid, ${hold.payeeAccountId}::uuid, ${hold.asset}::text,
            ${hold.amountMinor}::int8, ${hold.expiresAt}::timestamptz, ${hold.expiryOutcome}::text,
            ${hold.reference}::text, ${db.json(hold.metadata)}::jsonb, 'held', 'the amount moved into escrow',
            ${hold.createdBy}::text, ${hold.requestId}::text, ${hold.holdJournalId}::uuid, ${hold.managedBy}::text)`;
}

export async function selectHold(db: Executor, id: string): Promise<HoldRow | undefined> {
  const [row] = await db<HoldRow[]>`
    select ${holdColumns(db)} from escrow_holds h join assets s on s.code = h.asset where h.id = ${id}::uuid`;
  return row;
}

/** The hold's row lock: every change of one hold reads its remainder under it. */
export async function selectHoldForUpdate(db: Executor, id: string): Promise<HoldRow | undefined> {
  const [row] = await db<HoldRow[]>`
    select ${holdColumns(db)} from escrow_holds h join assets s on s.code = h.asset
    where h.id = ${id}::uuid for update of h`;
  return row;
}

export type HoldFilter = {
  payerAccountId: string | undefined;
  payeeAccountId: string | undefined;
  state: HoldState | undefined;
  asset: string | undefined;
  after: { createdAt: Date; id: string } | undefined;
  limit: number;
};

/** Newest first, keyset-paged on (created_at, id); `state` filters on what readers see. */
export async function selectHoldsPage(db: Executor, filter: HoldFilter): Promise<HoldRow[]> {
  return db<HoldRow[]>`
    select * from (
      select ${holdColumns(db)} from escrow_holds h join assets s on s.code = h.asset
      where (${filter.payerAccountId ?? null}::uuid is null or h.payer_account_id = ${filter.payerAccountId ?? null}::uuid)
        and (${filter.payeeAccountId ?? null}::uuid is null or h.payee_account_id = ${filter.payeeAccountId ?? null}::uuid)
        and (${filter.asset ?? null}::text is null or h.asset = ${filter.asset ?? null}::text)
        and (${filter.after?.createdAt ?? null}::timestamptz is null
             or (h.created_at, h.id) < (${filter.after?.createdAt ?? null}::timestamptz, ${filter.after?.id ?? null}::uuid))
    ) holds
    where (${filter.state ?? null}::text is null or holds.state = ${filter.state ?? null}::text)
    order by holds."createdAt" desc, holds.id desc
    limit ${filter.limit}::int`;
}

/** Which expiry guard a transition's statement carries. */
export type TimeGuard = 'live' | 'past' | 'any';

/**
 * Moves part or all of a hold's remainder (release to the payee, refund to the payer) along one
 * transition. The update is guarded by the transition's source states, the time guard and the
 * remainder, all in the statement: it returns false and changes nothing when any fails. The
 * caller holds the hold's row lock and posts the matching journal in the same transaction.
 */
export async function moveHold(
  db: Executor,
  input: {
    holdId: string;
    transition: Transition;
    guard: TimeGuard;
    releaseMinor: bigint;
    refundMinor: bigint;
    detail?: string;
  },
): Promise<boolean> {
  const { from, to, reason } = transitions[input.transition];
  const text = input.detail ? `${reason}: ${input.detail}` : reason;
  const finishes = to === 'closed' || to === 'expired';
  const rows = await db`
    update escrow_holds h set
      released_minor = h.released_minor + ${input.releaseMinor}::int8,
      refunded_minor = h.refunded_minor + ${input.refundMinor}::int8,
      state = ${to}::text, state_reason = ${text}::text, updated_at = now()
    where h.id = ${input.holdId}::uuid
      and h.state = any(${from as unknown as string[]}::text[])
      and case ${input.guard}::text
            when 'live' then h.expires_at is null or now() < h.expires_at
            when 'past' then h.expires_at <= now()
            else true end
      and h.released_minor + h.refunded_minor + ${input.releaseMinor}::int8 + ${input.refundMinor}::int8
          ${finishes ? db`= h.amount_minor` : db`< h.amount_minor`}
    returning h.id`;
  return rows.length === 1;
}

/** Freezes a live hold; false when it was not live (state or expiry) at now(). */
export async function disputeHold(db: Executor, holdId: string, detail: string): Promise<boolean> {
  const { from, to, reason } = transitions.disputed;
  const rows = await db`
    update escrow_holds h set state = ${to}::text, state_reason = ${`${reason}: ${detail}`}::text, updated_at = now()
    where h.id = ${holdId}::uuid and h.state = any(${from as unknown as string[]}::text[])
      and (h.expires_at is null or now() < h.expires_at)
    returning h.id`;
  return rows.length === 1;
}

export async function insertMovement(
  db: Executor,
  movement: {
    holdId: string;
    kind: 'release' | 'refund';
    amountMinor: bigint;
    cause: MovementRow['cause'];
    journalId: string;
    payoutId?: string | undefined;
  },
): Promise<void> {
  await db`
    insert into escrow_movements (hold_id, kind, amount_minor, cause, journal_id, payout_id)
    values (${movement.holdId}::uuid, ${movement.kind}::text, ${movement.amountMinor}::int8, ${movement.cause}::text,
            ${movement.journalId}::uuid, ${movement.payoutId ?? null}::uuid)`;
}

export async function selectMovements(db: Executor, holdId: string): Promise<MovementRow[]> {
  return db<MovementRow[]>`
    select kind, amount_minor as "amountMinor", cause, journal_id as "journalId", payout_id as "payoutId",
           created_at as "createdAt"
    from escrow_movements where hold_id = ${holdId}::uuid order by id`;
}

const disputeColumns = (db: Executor) => db`
  id, hold_id as "holdId", reason, evidence_refs as "evidenceRefs", opened_by as "openedBy", state, outcome,
  proposal_id as "proposalId", created_at as "createdAt", resolved_at as "resolvedAt"`;

export async function insertDispute(
  db: Executor,
  dispute: { id: string; holdId: string; reason: string; evidenceRefs: readonly string[]; openedBy: string },
): Promise<DisputeRow> {
  const [row] = await db<DisputeRow[]>`
    insert into escrow_disputes (id, hold_id, reason, evidence_refs, opened_by)
    values (${dispute.id}::uuid, ${dispute.holdId}::uuid, ${dispute.reason}::text,
            ${dispute.evidenceRefs as string[]}::text[], ${dispute.openedBy}::text)
    returning ${disputeColumns(db)}`;
  assert(row, 'insert into escrow_disputes returned no row');
  return row;
}

export async function selectDispute(db: Executor, holdId: string): Promise<DisputeRow | undefined> {
  const [row] = await db<DisputeRow[]>`
    select ${disputeColumns(db)} from escrow_disputes where hold_id = ${holdId}::uuid`;
  return row;
}

export async function resolveDisputeRow(
  db: Executor,
  holdId: string,
  outcome: 'release' | 'refund' | 'split',
  proposalId: string,
): Promise<boolean> {
  const rows = await db`
    update escrow_disputes set state = 'resolved', outcome = ${outcome}::text, proposal_id = ${proposalId}::uuid,
      resolved_at = now()
    where hold_id = ${holdId}::uuid and state = 'open'
    returning id`;
  return rows.length === 1;
}

/**
 * Live holds whose expiry passed, in (expires_at, id) order, locked and skipped by another
 * sweeper; the limit is in the SQL. The same guard as every read: `expires_at <= now()`.
 */
export async function claimExpiredHolds(db: Executor, limit: number): Promise<HoldRow[]> {
  return db<HoldRow[]>`
    select ${holdColumns(db)} from escrow_holds h join assets s on s.code = h.asset
    where h.state = any(${live}::text[]) and h.expires_at <= now()
    order by h.expires_at, h.id
    limit ${limit}::int
    for update of h skip locked`;
}

/** Per asset, the sum of what remains of open holds (minor units): what `escrow` must hold. */
export async function selectOpenHoldSums(db: Executor): Promise<Map<string, bigint>> {
  const rows = await db<{ asset: string; remainingMinor: bigint }[]>`
    select asset, sum(amount_minor - released_minor - refunded_minor)::bigint as "remainingMinor"
    from escrow_holds where state = any(${openStates as unknown as string[]}::text[])
    group by asset`;
  return new Map(rows.map((row) => [row.asset, row.remainingMinor]));
}

/**
 * Disputed holds past their expiresAt whose expiry the job has not yet recorded as refused, oldest
 * expiry first; each is marked in the same statement so the refusal is recorded once.
 */
export async function markDeferredExpiries(
  db: Executor,
  limit: number,
): Promise<{ holdId: string; disputeId: string; expiresAt: Date }[]> {
  return db<{ holdId: string; disputeId: string; expiresAt: Date }[]>`
    with due as (
      select d.id from escrow_disputes d join escrow_holds h on h.id = d.hold_id
      where d.state = 'open' and d.expiry_deferred_at is null and h.state = 'disputed' and h.expires_at <= now()
      order by h.expires_at, h.id
      limit ${limit}::int
      for update of d skip locked
    )
    update escrow_disputes d set expiry_deferred_at = now()
    from due, escrow_holds h
    where d.id = due.id and h.id = d.hold_id
    returning d.hold_id as "holdId", d.id as "disputeId", h.expires_at as "expiresAt"`;
}

export type DisputeFilter = {
  state: DisputeRow['state'] | undefined;
  after: { createdAt: Date; id: string } | undefined;
  limit: number;
};

/** Newest first, keyset-paged on (created_at, id). */
export async function selectDisputesPage(db: Executor, filter: DisputeFilter): Promise<DisputeRow[]> {
  return db<DisputeRow[]>`
    select ${disputeColumns(db)} from escrow_disputes
    where (${filter.state ?? null}::text is null or state = ${filter.state ?? null}::text)
      and (${filter.after?.createdAt ?? null}::timestamptz is null
           or (created_at, id) < (${filter.after?.createdAt ?? null}::timestamptz, ${filter.after?.id ?? null}::uuid))
    order by created_at desc, id desc
    limit ${filter.limit}::int`;
}

export type OpenHoldRow = {
  id: string;
  asset: string;
  state: HoldState;
  remainingMinor: bigint;
  createdAt: Date;
};

/**
 * Open holds of the given assets, largest remainder first, at most `limit` per asset: the holds
 * whose remainders `escrow` should hold, shown beside a leak's difference.
 */
export async function selectOpenHoldsOf(
  db: Executor,
  assets: readonly string[],
  limit: number,
): Promise<OpenHoldRow[]> {
  return db<OpenHoldRow[]>`
    select held.* from unnest(${assets as string[]}::text[]) as a(code)
    cross join lateral (
      select id, asset, state, amount_minor - released_minor - refunded_minor as "remainingMinor",
             created_at as "createdAt"
      from escrow_holds
      where asset = a.code and state = any(${openStates as unknown as string[]}::text[])
      order by amount_minor - released_minor - refunded_minor desc, id
      limit ${limit}::int
    ) held
    order by held.asset, held."remainingMinor" desc, held.id`;
}

export type StuckReleaseRow = {
  holdId: string;
  payoutId: string;
  asset: string;
  precision: number;
  amountMinor: bigint;
  payoutState: string;
  destination: string;
  releasedAt: Date;
};

/**
 * Releases to a payout whose payout is still open (not settled or failed) `olderThanSeconds`
 * after it was accepted, oldest first. Driven by the open payouts, so the cost follows what is in
 * flight, not history.
 */
export async function selectStuckReleases(
  db: Executor,
  input: { olderThanSeconds: number; payoutStates: readonly string[]; limit: number },
): Promise<StuckReleaseRow[]> {
  return db<StuckReleaseRow[]>`
    select m.hold_id as "holdId", p.id as "payoutId", p.asset, s.precision, m.amount_minor as "amountMinor",
           p.state as "payoutState", p.destination, m.created_at as "releasedAt"
    from payouts p
    join escrow_movements m on m.payout_id = p.id
    join assets s on s.code = p.asset
    where p.state = any(${input.payoutStates as string[]}::text[])
      and p.created_at < now() - make_interval(secs => ${input.olderThanSeconds}::int)
    order by p.created_at, p.id
    limit ${input.limit}::int`;
}
