import { maybeOnChainStates } from '../payouts/states.ts';
import type { Executor } from '../platform/db/types.ts';
import type { DetectorName, FindingKind, Observation } from './findings.ts';

/** Reconciliation SQL: one function per statement, the executor first, every parameter cast. */

// ---------------------------------------------------------------------------------------------
// Findings

export type FindingRow = {
  id: string;
  kind: FindingKind;
  subject: string;
  evidence: unknown;
  firstSeenAt: Date;
  lastSeenAt: Date;
  resolvedAt: Date | null;
  occurrences: number;
};

const findingColumns = (db: Executor) => db`
  id, kind, subject, evidence, first_seen_at as "firstSeenAt", last_seen_at as "lastSeenAt",
  resolved_at as "resolvedAt", occurrences`;

/** Creates or updates one open finding per (kind, subject); `created` is false for an update. */
export async function upsertFindings(
  db: Executor,
  observations: readonly Observation[],
): Promise<{ kind: FindingKind; subject: string; created: boolean }[]> {
  return db<{ kind: FindingKind; subject: string; created: boolean }[]>`
    insert into reconciliation_findings (kind, subject, evidence)
    select f.kind, f.subject, f.evidence::jsonb
    from unnest(${observations.map((o) => o.kind)}::text[], ${observations.map((o) => o.subject)}::text[],
                ${observations.map((o) => JSON.stringify(o.evidence))}::text[]) as f(kind, subject, evidence)
    on conflict (kind, subject) where resolved_at is null do update
      set evidence = reconciliation_findings.evidence || excluded.evidence,
          last_seen_at = greatest(now(), reconciliation_findings.last_seen_at),
          occurrences = reconciliation_findings.occurrences + 1
    returning kind, subject, (xmax = 0) as created`;
}

/** Resolves the open findings of a kind whose subject is not in `subjects`. */
export async function resolveFindingsExcept(
  db: Executor,
  kind: FindingKind,
  subjects: readonly string[],
): Promise<number> {
  const rows = await db`
    update reconciliation_findings set resolved_at = greatest(now(), last_seen_at)
    where kind = ${kind}::text and resolved_at is null and subject <> all(${subjects as string[]}::text[])
    returning id`;
  return rows.length;
}

/** An operator closes a finding that does not close by itself; the note joins its evidence. */
export async function closeFinding(
  db: Executor,
  id: string,
  note: { closedBy: string; closeReason: string },
): Promise<FindingRow | undefined> {
  const [row] = await db<FindingRow[]>`
    update reconciliation_findings
    set resolved_at = greatest(now(), last_seen_at), evidence = evidence || ${db.json(note)}::jsonb
    where id = ${id}::uuid and resolved_at is null
    returning ${findingColumns(db)}`;
  return row;
}

export type FindingFilter = { kind?: string; subject?: string; limit: number; offset?: number };

/** Open findings, newest first (what the triage endpoints show). */
export async function selectOpenFindings(db: Executor, filter: FindingFilter): Promise<FindingRow[]> {
  return db<FindingRow[]>`
    select ${findingColumns(db)} from reconciliation_findings
    where resolved_at is null
      and (${filter.kind ?? null}::text is null or kind = ${filter.kind ?? null}::text)
      and (${filter.subject ?? null}::text is null or subject = ${filter.subject ?? null}::text)
    order by first_seen_at desc, id
    limit ${filter.limit}::int offset ${filter.offset ?? 0}::int`;
}

/** Open and resolved findings, newest first. */
export async function selectFindings(db: Executor, filter: FindingFilter): Promise<FindingRow[]> {
  return db<FindingRow[]>`
    select ${findingColumns(db)} from reconciliation_findings
    where (${filter.kind ?? null}::text is null or kind = ${filter.kind ?? null}::text)
      and (${filter.subject ?? null}::text is null or subject = ${filter.subject ?? null}::text)
    order by first_seen_at desc, id
    limit ${filter.limit}::int offset ${filter.offset ?? 0}::int`;
}

export async function countOpenFindingsByKind(db: Executor): Promise<{ kind: FindingKind; count: number }[]> {
  return db<{ kind: FindingKind; count: number }[]>`
    select kind, count(*)::int as count from reconciliation_findings where resolved_at is null
    group by kind order by kind`;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints and leases

export type Checkpoint = { cursor: bigint; state: Record<string, unknown> };

/** Takes the detector's lease when nobody holds a live one; undefined when another process does. */
export async function claimLease(
  db: Executor,
  detector: DetectorName,
  lease: string,
  leaseSeconds: number,
): Promise<Checkpoint | undefined> {
  const [row] = await db<Checkpoint[]>`
    update reconciliation_checkpoints
    set lease = ${lease}::uuid, lease_until = now() + make_interval(secs => ${leaseSeconds}::int), updated_at = now()
    where detector = ${detector}::text and (lease_until is null or lease_until < now())
    returning cursor, state`;
  return row;
}

/** The checkpoint, only while `lease` still holds it. */
export async function selectCheckpoint(
  db: Executor,
  detector: DetectorName,
  lease: string,
): Promise<Checkpoint | undefined> {
  const [row] = await db<Checkpoint[]>`
    select cursor, state from reconciliation_checkpoints
    where detector = ${detector}::text and lease = ${lease}::uuid`;
  return row;
}

/** Moves the checkpoint and extends the lease; false when the lease was lost (the caller rolls back). */
export async function saveCheckpoint(
  db: Executor,
  detector: DetectorName,
  lease: string,
  checkpoint: { cursor: bigint; state: Record<string, unknown> },
  leaseSeconds: number,
): Promise<boolean> {
  const rows = await db`
    update reconciliation_checkpoints
    set cursor = ${checkpoint.cursor.toString()}::int8, state = ${JSON.stringify(checkpoint.state)}::text::jsonb,
        lease_until = now() + make_interval(secs => ${leaseSeconds}::int), updated_at = now()
    where detector = ${detector}::text and lease = ${lease}::uuid
    returning detector`;
  return rows.length === 1;
}

export async function releaseLease(
  db: Executor,
  detector: DetectorName,
  lease: string,
  succeeded: boolean,
): Promise<void> {
  await db`
    update reconciliation_checkpoints
    set lease = null, lease_until = null, updated_at = now(),
        last_success_at = case when ${succeeded}::bool then now() else last_success_at end
    where detector = ${detector}::text and lease = ${lease}::uuid`;
}

export async function selectLastSuccesses(
  db: Executor,
): Promise<{ detector: DetectorName; lastSuccessAt: Date | null }[]> {
  return db<{ detector: DetectorName; lastSuccessAt: Date | null }[]>`
    select detector, last_success_at as "lastSuccessAt" from reconciliation_checkpoints order by detector`;
}

/** Another detector's carried state, read-only (chain_balance reads what outgoing_payments accumulated). */
export async function selectCheckpointState(
  db: Executor,
  detector: DetectorName,
): Promise<Record<string, unknown>> {
  const [row] = await db<{ state: Record<string, unknown> }[]>`
    select state from reconciliation_checkpoints where detector = ${detector}::text`;
  return row?.state ?? {};
}

// ---------------------------------------------------------------------------------------------
// Entry scans (ledger_balance, account_balances)

export type EntryScanDetector = 'ledger_balance' | 'account_balances';
export type DeltaCounts = { scanned: number; recovered: number };

/**
 * For the rest of the caller's transaction. With a million entries the planner's estimate for the
 * gap query (generate_series guesses 1,000 rows a call) crosses jit_above_cost, and compiling
 * took 4 ms of a 5 ms pass, for a query that reads one page range: measured, and not worth it.
 */
export async function disableJit(db: Executor): Promise<void> {
  await db`set local jit = off`;
}

export async function selectEntryIdMax(db: Executor): Promise<bigint> {
  const [row] = await db<{ maxId: bigint }[]>`select coalesce(max(id), 0)::int8 as "maxId" from entries`;
  return row?.maxId ?? 0n;
}

/**
 * Adds to the per-asset totals every entry in (cursor, upper] and every earlier gap that has
 * become visible (those gaps are removed in the same statement, so nothing is counted twice).
 */
export async function addAssetDeltas(db: Executor, cursor: bigint, upper: bigint): Promise<DeltaCounts> {
  const [row] = await db<DeltaCounts[]>`
    with recovered as (
      delete from reconciliation_entry_gaps g using entries e
      where g.detector = 'ledger_balance' and e.id = g.entry_id
      returning e.asset, e.amount_minor
    ), scanned as (
      select asset, amount_minor from entries
      where id > ${cursor.toString()}::int8 and id <= ${upper.toString()}::int8
    ), deltas as (
      select asset, sum(amount_minor) as delta
      from (select * from recovered union all select * from scanned) both_sets
      group by asset
    ), applied as (
      insert into reconciliation_asset_totals (asset, total_minor)
      select asset, delta from deltas
      on conflict (asset) do update set total_minor = reconciliation_asset_totals.total_minor + excluded.total_minor
    )
    select (select count(*) from scanned)::int as scanned, (select count(*) from recovered)::int as recovered`;
  return row ?? { scanned: 0, recovered: 0 };
}

/** As addAssetDeltas, per account. */
export async function addAccountDeltas(db: Executor, cursor: bigint, upper: bigint): Promise<DeltaCounts> {
  const [row] = await db<DeltaCounts[]>`
    with recovered as (
      delete from reconciliation_entry_gaps g using entries e
      where g.detector = 'account_balances' and e.id = g.entry_id
      returning e.account_id, e.amount_minor
    ), scanned as (
      select account_id, amount_minor from entries
      where id > ${cursor.toString()}::int8 and id <= ${upper.toString()}::int8
    ), deltas as (
      select account_id, sum(amount_minor) as delta
      from (select * from recovered union all select * from scanned) both_sets
      group by account_id
    ), applied as (
      insert into reconciliation_account_totals (account_id, total_minor)
      select account_id, delta from deltas
      on conflict (account_id) do update
        set total_minor = reconciliation_account_totals.total_minor + excluded.total_minor
    )
    select (select count(*) from scanned)::int as scanned, (select count(*) from recovered)::int as recovered`;
  return row ?? { scanned: 0, recovered: 0 };
}

/**
 * Records as gaps the ids in (cursor, upper] that this snapshot does not show: the holes between
 * consecutive visible ids, read from the primary key alone.
 */
export async function insertEntryGaps(
  db: Executor,
  detector: EntryScanDetector,
  cursor: bigint,
  upper: bigint,
): Promise<number> {
  const rows = await db`
    insert into reconciliation_entry_gaps (detector, entry_id)
    select ${detector}::text, gap
    from (
      select id, lead(id, 1, ${(upper + 1n).toString()}::int8) over (order by id) as next_id
      from (
        select ${cursor.toString()}::int8 as id
        union all
        select id from entries where id > ${cursor.toString()}::int8 and id <= ${upper.toString()}::int8
      ) visible
    ) runs, generate_series(runs.id + 1, runs.next_id - 1) as gap
    on conflict do nothing
    returning entry_id`;
  return rows.length;
}

/** Forgets gaps older than the longest posting transaction: they were rolled back. */
export async function expireEntryGaps(
  db: Executor,
  detector: EntryScanDetector,
  ageSecondsMax: number,
): Promise<number> {
  const rows = await db`
    delete from reconciliation_entry_gaps
    where detector = ${detector}::text and seen_at < now() - make_interval(secs => ${ageSecondsMax}::int)
    returning entry_id`;
  return rows.length;
}

/** Keeps the newest `countMax` gaps; returns how many older ones were dropped. */
export async function trimEntryGaps(
  db: Executor,
  detector: EntryScanDetector,
  countMax: number,
): Promise<number> {
  const rows = await db`
    delete from reconciliation_entry_gaps
    where detector = ${detector}::text and entry_id in (
      select entry_id from reconciliation_entry_gaps where detector = ${detector}::text
      order by seen_at desc, entry_id desc offset ${countMax}::int
    )
    returning entry_id`;
  return rows.length;
}

export async function deleteEntryGaps(db: Executor, detector: EntryScanDetector): Promise<void> {
  await db`delete from reconciliation_entry_gaps where detector = ${detector}::text`;
}

export async function deleteAssetTotals(db: Executor): Promise<void> {
  await db`delete from reconciliation_asset_totals`;
}

export async function deleteAccountTotals(db: Executor): Promise<void> {
  await db`delete from reconciliation_account_totals`;
}

export type AssetImbalance = { asset: string; precision: number; totalMinor: bigint };

export async function selectAssetImbalances(db: Executor): Promise<AssetImbalance[]> {
  const rows = await db<{ asset: string; precision: number; totalMinor: string }[]>`
    select t.asset, s.precision, t.total_minor::text as "totalMinor"
    from reconciliation_asset_totals t join assets s on s.code = t.asset
    where t.total_minor <> 0 order by t.asset`;
  return rows.map((row) => ({ ...row, totalMinor: BigInt(row.totalMinor) }));
}

export type AccountMismatch = {
  accountId: string;
  type: string;
  asset: string;
  precision: number;
  balanceMinor: bigint;
  entriesMinor: bigint;
};

/** Every account whose stored balance is not the sum of its entries (O(accounts), not O(history)). */
export async function selectAccountMismatches(db: Executor, limit: number): Promise<AccountMismatch[]> {
  const rows = await db<(Omit<AccountMismatch, 'entriesMinor'> & { entriesMinor: string })[]>`
    select a.id as "accountId", a.type, a.asset, s.precision, a.balance_minor as "balanceMinor",
           coalesce(t.total_minor, 0)::text as "entriesMinor"
    from accounts a
    join assets s on s.code = a.asset
    left join reconciliation_account_totals t on t.account_id = a.id
    where a.balance_minor <> coalesce(t.total_minor, 0)
    order by a.id
    limit ${limit}::int`;
  return rows.map((row) => ({ ...row, entriesMinor: BigInt(row.entriesMinor) }));
}

// ---------------------------------------------------------------------------------------------
// Stuck settlements

export type StuckPayout = {
  id: string;
  state: string;
  asset: string;
  precision: number;
  amountMinor: bigint;
  destination: string;
  stateReason: string;
  createdAt: Date;
  updatedAt: Date;
};

export async function countStuckPayouts(
  db: Executor,
  olderThanSeconds: number,
  openStates: readonly string[],
): Promise<{ state: string; count: number }[]> {
  return db<{ state: string; count: number }[]>`
    select state, count(*)::int as count from payouts
    where state = any(${openStates as string[]}::text[])
      and created_at < now() - make_interval(secs => ${olderThanSeconds}::int)
    group by state order by state`;
}

/** The oldest stuck payouts first; the limit is in the SQL. */
export async function selectStuckPayouts(
  db: Executor,
  olderThanSeconds: number,
  openStates: readonly string[],
  limit: number,
): Promise<StuckPayout[]> {
  return db<StuckPayout[]>`
    select p.id, p.state, p.asset, s.precision, p.amount_minor as "amountMinor", p.destination,
           p.state_reason as "stateReason", p.created_at as "createdAt", p.updated_at as "updatedAt"
    from payouts p join assets s on s.code = p.asset
    where p.state = any(${openStates as string[]}::text[])
      and p.created_at < now() - make_interval(secs => ${olderThanSeconds}::int)
    order by p.created_at, p.id
    limit ${limit}::int`;
}

/** Resolves stuck-settlement findings whose payout is terminal now (or no longer past the threshold). */
export async function resolveUnstuckFindings(
  db: Executor,
  olderThanSeconds: number,
  openStates: readonly string[],
): Promise<number> {
  const rows = await db`
    update reconciliation_findings f set resolved_at = greatest(now(), f.last_seen_at)
    where f.kind = 'stuck_settlement' and f.resolved_at is null
      and not exists (
        select 1 from payouts p
        where p.id = f.subject::uuid and p.state = any(${openStates as string[]}::text[])
          and p.created_at < now() - make_interval(secs => ${olderThanSeconds}::int)
      )
    returning f.id`;
  return rows.length;
}

// ---------------------------------------------------------------------------------------------
// System account balances (escrow, chain_balance)

export type SystemBalance = { accountId: string; asset: string; precision: number; balanceMinor: bigint };

export async function selectSystemBalances(
  db: Executor,
  type: 'escrow' | 'settlement',
): Promise<SystemBalance[]> {
  return db<SystemBalance[]>`
    select a.id as "accountId", a.asset, s.precision, a.balance_minor as "balanceMinor"
    from accounts a join assets s on s.code = a.asset
    where a.type = ${type}::text order by a.asset`;
}

/** Payouts whose payment may have left on chain without the ledger having booked it yet. */
export async function selectInFlightPayoutSums(
  db: Executor,
): Promise<{ asset: string; amountMinor: bigint; count: number }[]> {
  const rows = await db<{ asset: string; amountMinor: string; count: number }[]>`
    select asset, sum(amount_minor)::text as "amountMinor", count(*)::int as count from payouts
    where state = any(${maybeOnChainStates}::text[]) group by asset order by asset`;
  return rows.map((row) => ({ ...row, amountMinor: BigInt(row.amountMinor) }));
}

// ---------------------------------------------------------------------------------------------
// Outgoing payments

export type TransactionPayout = {
  hash: string;
  operationIndex: number;
  payoutId: string;
  destination: string;
  asset: string;
  precision: number;
  amountMinor: bigint;
  state: string;
};

/** The payouts carried by the settlement attempts with these (inner) transaction hashes. */
export async function selectPayoutsOfTransactions(
  db: Executor,
  hashes: readonly string[],
): Promise<TransactionPayout[]> {
  return db<TransactionPayout[]>`
    select a.hash, ap.operation_index as "operationIndex", p.id as "payoutId", p.destination, p.asset,
           s.precision, p.amount_minor as "amountMinor", p.state
    from settlement_attempts a
    join settlement_attempt_payouts ap on ap.attempt_id = a.id
    join payouts p on p.id = ap.payout_id
    join assets s on s.code = p.asset
    where a.hash = any(${hashes as string[]}::text[])
    order by a.hash, ap.operation_index`;
}

/**
 * The most recently settled payout with this destination, asset and amount. No index serves it
 * (a sequential scan of payouts): it runs only for a payment no attempt explains, which is
 * already an incident, and an index would tax every payout insert for that rare case.
 */
export async function selectSettledLookalike(
  db: Executor,
  payment: { destination: string; asset: string; amountMinor: bigint },
): Promise<string | undefined> {
  const [row] = await db<{ id: string }[]>`
    select id from payouts
    where state = 'settled' and destination = ${payment.destination}::text and asset = ${payment.asset}::text
      and amount_minor = ${payment.amountMinor}::int8
    order by updated_at desc, id limit 1`;
  return row?.id;
}

export type PayoutPayment = {
  pagingToken: bigint;
  payoutId: string;
  transactionHash: string;
  attribution: 'attempt' | 'likeness';
};

export async function insertPayoutPayments(db: Executor, payments: readonly PayoutPayment[]): Promise<void> {
  await db`
    insert into reconciliation_payout_payments (paging_token, payout_id, transaction_hash, attribution)
    select * from unnest(${payments.map((p) => p.pagingToken.toString())}::int8[],
                         ${payments.map((p) => p.payoutId)}::uuid[],
                         ${payments.map((p) => p.transactionHash)}::text[],
                         ${payments.map((p) => p.attribution)}::text[])
    on conflict do nothing`;
}

export type AttributedPayment = PayoutPayment & {
  destination: string;
  asset: string;
  precision: number;
  amountMinor: bigint;
  state: string;
};

/** The payments attributed to these payouts, with what each payout asked for. */
export async function selectPayoutPayments(
  db: Executor,
  payoutIds: readonly string[],
): Promise<AttributedPayment[]> {
  return db<AttributedPayment[]>`
    select r.paging_token as "pagingToken", r.payout_id as "payoutId", r.transaction_hash as "transactionHash",
           r.attribution, p.destination, p.asset, s.precision, p.amount_minor as "amountMinor", p.state
    from reconciliation_payout_payments r
    join payouts p on p.id = r.payout_id
    join assets s on s.code = p.asset
    where r.payout_id = any(${payoutIds as string[]}::uuid[])
    order by r.payout_id, r.paging_token`;
}

export async function selectChannelAccountIds(db: Executor): Promise<string[]> {
  const rows = await db<{ accountId: string }[]>`select account_id as "accountId" from payout_channels`;
  return rows.map((row) => row.accountId);
}

/**
 * Payouts with more than one succeeded settlement attempt, among the payouts of attempts that
 * succeeded after `since` (a partial index on succeeded attempts keeps this to recent rows).
 */
export async function selectPayoutsSucceededTwice(
  db: Executor,
  since: Date,
): Promise<{ payoutId: string; hashes: string[]; latestAt: Date }[]> {
  return db<{ payoutId: string; hashes: string[]; latestAt: Date }[]>`
    select ap.payout_id as "payoutId", array_agg(a.hash order by a.resolved_at, a.id) as hashes,
           max(a.resolved_at) as "latestAt"
    from settlement_attempt_payouts ap join settlement_attempts a on a.id = ap.attempt_id
    where a.state = 'succeeded' and ap.payout_id in (
      select recent_link.payout_id
      from settlement_attempts recent
      join settlement_attempt_payouts recent_link on recent_link.attempt_id = recent.id
      where recent.state = 'succeeded' and recent.resolved_at > ${since}::timestamptz
    )
    group by ap.payout_id having count(*) > 1`;
}

export async function selectLatestSucceededAt(db: Executor): Promise<Date | null> {
  const [row] = await db<{ latest: Date | null }[]>`
    select max(resolved_at) as latest from settlement_attempts where state = 'succeeded'`;
  return row?.latest ?? null;
}

// ---------------------------------------------------------------------------------------------
// Deposits

export type ScannedDeposit = {
  id: string;
  provider: string;
  reference: string;
  accountId: string;
  asset: string;
  precision: number;
  amountMinor: bigint;
  source: 'webhook' | 'chain' | 'proof';
  /** Held in deposit_suspense: credited to nobody, whatever account its payload named. */
  held: boolean;
  createdAt: Date;
};

/** Deposits created after `since` that this detector has not handled yet, oldest first. */
export async function selectUnseenDeposits(
  db: Executor,
  since: Date,
  limit: number,
): Promise<ScannedDeposit[]> {
  return db<ScannedDeposit[]>`
    select d.id, d.provider, d.reference, d.account_id as "accountId", d.asset, s.precision,
           d.amount_minor as "amountMinor", d.source, d.suspense_reason is not null as held,
           d.created_at as "createdAt"
    from deposits d join assets s on s.code = d.asset
    where d.created_at > ${since}::timestamptz
      and not exists (
        select 1 from reconciliation_seen r where r.detector = 'deposits' and r.item = 'deposit:' || d.id::text
      )
    order by d.created_at, d.id
    limit ${limit}::int`;
}

export type ProviderEvent = {
  id: string;
  provider: string;
  body: string;
  state: 'processed' | 'replayed';
  outcome: string | null;
  updatedAt: Date;
};

/** Provider webhooks that were processed or replayed after `since` and not handled yet, oldest first. */
export async function selectUnseenProviderEvents(
  db: Executor,
  since: Date,
  limit: number,
): Promise<ProviderEvent[]> {
  return db<ProviderEvent[]>`
    select w.id, w.provider, w.body, w.state, w.outcome, w.updated_at as "updatedAt"
    from inbound_webhooks w
    where w.updated_at > ${since}::timestamptz and w.state in ('processed', 'replayed')
      and not exists (
        select 1 from reconciliation_seen r where r.detector = 'deposits' and r.item = 'event:' || w.id::text
      )
    order by w.updated_at, w.id
    limit ${limit}::int`;
}

/**
 * The provider events written in the transaction that credited a deposit: a webhook credit stores
 * its event in the same transaction, so both carry that transaction's now() (compared in SQL, at
 * full microsecond precision).
 */
export async function selectEventsOfDeposit(db: Executor, depositId: string): Promise<ProviderEvent[]> {
  return db<ProviderEvent[]>`
    select w.id, w.provider, w.body, w.state, w.outcome, w.updated_at as "updatedAt"
    from deposits d
    join inbound_webhooks w on w.updated_at = d.created_at and w.provider = d.provider
    where d.id = ${depositId}::uuid and w.state in ('processed', 'replayed')
    order by w.id`;
}

export async function selectDepositByReference(
  db: Executor,
  provider: string,
  reference: string,
): Promise<ScannedDeposit | undefined> {
  const [row] = await db<ScannedDeposit[]>`
    select d.id, d.provider, d.reference, d.account_id as "accountId", d.asset, s.precision,
           d.amount_minor as "amountMinor", d.source, d.suspense_reason is not null as held,
           d.created_at as "createdAt"
    from deposits d join assets s on s.code = d.asset
    where d.provider = ${provider}::text and d.reference = ${reference}::text`;
  return row;
}

export async function insertSeen(
  db: Executor,
  detector: DetectorName,
  items: readonly { item: string; at: Date }[],
): Promise<void> {
  await db`
    insert into reconciliation_seen (detector, item, item_at)
    select ${detector}::text, item, item_at
    from unnest(${items.map((i) => i.item)}::text[], ${items.map((i) => i.at.toISOString())}::timestamptz[]) as s(item, item_at)
    on conflict do nothing`;
}

/** Forgets handled items that have fallen behind the scan window: no scan reaches them again. */
export async function purgeSeen(db: Executor, detector: DetectorName, before: Date): Promise<number> {
  const rows = await db`
    delete from reconciliation_seen where detector = ${detector}::text and item_at < ${before}::timestamptz
    returning item`;
  return rows.length;
}

export async function deleteSeen(db: Executor, detector: DetectorName): Promise<void> {
  await db`delete from reconciliation_seen where detector = ${detector}::text`;
}

/** For the progress bar of a full run only (a count over the whole table). */
export async function countDepositsSince(db: Executor, since: Date): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from deposits where created_at > ${since}::timestamptz`;
  return row?.count ?? 0;
}

export type CallerVolume = {
  caller: string;
  asset: string;
  precision: number;
  dayMinor: bigint;
  dayCount: number;
  trailingMinor: bigint;
};

/**
 * Per caller (the subject that created the payouts) and asset: what it paid out in the last 24 h
 * and in the `trailingDays` before, cancelled payouts excepted; the largest day totals first.
 * Reads the payouts_created index range of those days.
 */
export async function selectCallerVolumes(
  db: Executor,
  input: { trailingDays: number; limit: number },
): Promise<CallerVolume[]> {
  return db<CallerVolume[]>`
    with volumes as (
      select created_by, asset,
        coalesce(sum(amount_minor) filter (where created_at >= now() - interval '1 day'), 0)::int8 as day_minor,
        (count(*) filter (where created_at >= now() - interval '1 day'))::int as day_count,
        coalesce(sum(amount_minor) filter (where created_at < now() - interval '1 day'), 0)::int8 as trailing_minor
      from payouts
      where created_at >= now() - make_interval(days => 1 + ${input.trailingDays}::int) and state <> 'cancelled'
      group by created_by, asset
    )
    select v.created_by as caller, v.asset, s.precision, v.day_minor as "dayMinor", v.day_count as "dayCount",
           v.trailing_minor as "trailingMinor"
    from volumes v join assets s on s.code = v.asset
    where v.day_minor > 0
    order by v.day_minor desc, v.created_by, v.asset
    limit ${input.limit}::int`;
}
