import { randomUUID } from 'node:crypto';
import type { Approvals, Payload, ProposalAction, ProposalView } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import { assertMoneyMovementAllowed } from '../controls/service.ts';
import { insertSecurityEvent } from '../deposits/data.ts';
import { type AccountRow, selectAccount, selectSystemAccount } from '../ledger/data.ts';
import { lockAccounts, postJournal } from '../ledger/service.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import { formatAmount, parseAmount } from '../money/money.ts';
import type { ScreenedDestination } from '../payouts/destinations.ts';
import { acceptPayout } from '../payouts/service.ts';
import { assert } from '../platform/assert.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import type { MerchantEventType } from '../webhooks/event-types.ts';
import { emitEvents, type MerchantEvent } from '../webhooks/events.ts';
import {
  claimExpiredHolds,
  type DisputeRow,
  disputeHold,
  type HoldManager,
  type HoldRow,
  insertDispute,
  insertHold,
  insertMovement,
  type MovementRow,
  markDeferredExpiries,
  moveHold,
  resolveDisputeRow,
  selectDispute,
  selectHold,
  selectHoldForUpdate,
  selectMovements,
} from './data.ts';
import { escrowDisputedAttempts } from './metrics.ts';
import type { ExpiryOutcome, HoldState } from './states.ts';

export const resolveDisputeAction = 'escrow.resolve_dispute';
/** The furthest a hold may expire: ten years. */
export const holdExpiryDaysMax = 3_650;
export const metadataKeysMax = 20;
export const metadataKeyLengthMax = 64;
export const metadataValueLengthMax = 500;
export const referenceLengthMax = 200;
export const disputeReasonLengthMax = 1_000;
export const evidenceRefsMax = 20;
export const evidenceRefLengthMax = 500;
/** Expired holds settled per transaction by the expiry job, and transactions per run. */
export const expiryBatchMax = 100;
export const expiryBatchesPerRunMax = 20;

export type Actor = { name: string; requestId: string | undefined };

export type HoldInput = {
  payerAccountId: string;
  payeeAccountId: string;
  asset: string;
  amount: string;
  expiresAt?: string;
  expiryOutcome?: ExpiryOutcome;
  reference?: string;
  metadata?: Record<string, string>;
};

export type HoldView = {
  id: string;
  payerAccountId: string;
  payeeAccountId: string;
  asset: string;
  amount: string;
  released: string;
  refunded: string;
  remaining: string;
  expiresAt: string | null;
  expiryOutcome: ExpiryOutcome;
  reference: string | null;
  metadata: Record<string, string>;
  /** `stream`: a payment stream owns the hold and alone moves it. */
  managedBy: HoldManager | null;
  state: HoldState;
  stateReason: string;
  createdAt: string;
  updatedAt: string;
};

export function remainingOf(row: HoldRow): bigint {
  return row.amountMinor - row.releasedMinor - row.refundedMinor;
}

export function holdView(row: HoldRow): HoldView {
  const format = (minor: bigint) => formatAmount(minor, row.precision);
  return {
    id: row.id,
    payerAccountId: row.payerAccountId,
    payeeAccountId: row.payeeAccountId,
    asset: row.asset,
    amount: format(row.amountMinor),
    released: format(row.releasedMinor),
    refunded: format(row.refundedMinor),
    remaining: format(remainingOf(row)),
    expiresAt: row.expiresAt?.toISOString() ?? null,
    expiryOutcome: row.expiryOutcome,
    reference: row.reference,
    metadata: row.metadata,
    managedBy: row.managedBy,
    state: row.state,
    stateReason: row.stateReason,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

async function escrowAccount(db: Executor, asset: string): Promise<string> {
  const account = await selectSystemAccount(db, 'escrow', asset);
  assert(account, `no escrow account for ${asset}: system accounts missing`);
  return account.id;
}

/** One event about each side of the hold: endpoints naming an owner hear about their accounts' holds. */
function holdEvents(
  type: MerchantEventType,
  hold: HoldRow,
  data: Readonly<Record<string, unknown>> = {},
): MerchantEvent[] {
  const body = { holdId: hold.id, ...holdView(hold), ...data };
  // A stream paying a Stellar address names its payer on both sides: one event, not two.
  const accounts = new Set([hold.payerAccountId, hold.payeeAccountId]);
  return [...accounts].map((accountId) => ({ type, accountId, data: body }));
}

async function reread(db: Executor, id: string): Promise<HoldRow> {
  const row = await selectHold(db, id);
  assert(row, `escrow hold ${id} vanished`);
  return row;
}

function checkMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  const entries = Object.entries(metadata ?? {});
  const fits =
    entries.length <= metadataKeysMax &&
    entries.every(
      ([key, value]) =>
        key.length > 0 &&
        key.length <= metadataKeyLengthMax &&
        typeof value === 'string' &&
        value.length <= metadataValueLengthMax,
    );
  if (!fits) {
    throw new DomainError(
      'request/validation',
      `metadata holds at most ${metadataKeysMax} string values (keys up to ${metadataKeyLengthMax}, values up to ${metadataValueLengthMax} characters)`,
    );
  }
  return Object.fromEntries(entries);
}

function checkParty(account: AccountRow | undefined, id: string, asset: string): AccountRow {
  if (!account) throw new DomainError('ledger/account-not-found', `no account ${id}`, { accountId: id });
  if (account.type !== 'customer' && account.type !== 'merchant') {
    throw new DomainError('escrow/invalid-party', `account ${id} is a ${account.type} account`);
  }
  if (account.asset !== asset) {
    throw new DomainError('escrow/invalid-party', `account ${id} holds ${account.asset}, not ${asset}`);
  }
  return account;
}

function checkExpiry(expiresAt: string | undefined, now: Date): Date | null {
  if (expiresAt === undefined) return null;
  const at = new Date(expiresAt);
  const latest = now.getTime() + holdExpiryDaysMax * 86_400_000;
  if (Number.isNaN(at.getTime()) || at.getTime() <= now.getTime() || at.getTime() > latest) {
    throw new DomainError(
      'escrow/invalid-expiry',
      `expiresAt must be after now and within ${holdExpiryDaysMax} days`,
    );
  }
  return at;
}

/**
 * Opens a hold: the amount leaves the payer for the asset's `escrow` account in one journal
 * transaction (the ledger refuses it with `ledger/insufficient-funds` under the accounts' locks),
 * with the hold row, its audit row and `escrow.held`, all in the caller's transaction.
 */
export async function createHold(
  tx: Tx,
  input: HoldInput,
  actor: Actor,
  managedBy: HoldManager | null = null,
): Promise<HoldView> {
  // A stream to a Stellar address releases to its payer, who pays it on (docs/streams.md).
  if (input.payerAccountId === input.payeeAccountId && managedBy === null) {
    throw new DomainError('escrow/invalid-party', 'payer and payee must be different accounts');
  }
  const metadata = checkMetadata(input.metadata);
  // Read unlocked first (an account's type and asset never change) to find the escrow account to
  // lock with the payer: both in one call, in the global order (lockAccounts).
  const [, payerRow, payeeRow, [clock]] = await Promise.all([
    assertMoneyMovementAllowed(tx),
    selectAccount(tx, input.payerAccountId),
    selectAccount(tx, input.payeeAccountId),
    tx<{ now: Date }[]>`select now() as now`,
  ]);
  const payer = checkParty(payerRow, input.payerAccountId, input.asset);
  checkParty(payeeRow, input.payeeAccountId, input.asset);
  assert(clock, 'select now() returned no row');
  const expiresAt = checkExpiry(input.expiresAt, clock.now);
  const amountMinor = parsePositiveAmount(input.amount, payer.precision);
  const escrow = await escrowAccount(tx, payer.asset);
  const locked = await lockAccounts(tx, [payer.id, escrow]);
  const id = randomUUID();
  const { journalId } = await postJournal(
    tx,
    {
      kind: 'escrow_hold',
      entries: [
        { accountId: payer.id, amountMinor: -amountMinor },
        { accountId: escrow, amountMinor },
      ],
      reference: id,
      requestId: actor.requestId,
    },
    locked,
  );
  await insertHold(tx, {
    id,
    payerAccountId: payer.id,
    payeeAccountId: input.payeeAccountId,
    asset: payer.asset,
    amountMinor,
    expiresAt,
    expiryOutcome: input.expiryOutcome ?? 'refund',
    reference: input.reference ?? null,
    metadata,
    createdBy: actor.name,
    requestId: actor.requestId ?? null,
    holdJournalId: journalId,
    managedBy,
  });
  const hold = await reread(tx, id);
  await Promise.all([
    appendAudit(tx, {
      actor: actor.name,
      action: 'escrow.held',
      subjectType: 'escrow_hold',
      subjectId: id,
      after: { ...holdView(hold), journalId },
      requestId: actor.requestId,
    }),
    emitEvents(tx, holdEvents('escrow.held', hold)),
  ]);
  return holdView(hold);
}

export async function getHold(db: Executor, id: string): Promise<HoldRow> {
  const row = await selectHold(db, id);
  if (!row) throw new DomainError('escrow/hold-not-found', `no escrow hold ${id}`);
  return row;
}

export type DisputeView = {
  id: string;
  holdId: string;
  reason: string;
  evidenceRefs: string[];
  openedBy: string;
  state: DisputeRow['state'];
  outcome: DisputeRow['outcome'];
  proposalId: string | null;
  createdAt: string;
  resolvedAt: string | null;
};

export function disputeView(dispute: DisputeRow): DisputeView {
  return {
    id: dispute.id,
    holdId: dispute.holdId,
    reason: dispute.reason,
    evidenceRefs: dispute.evidenceRefs,
    openedBy: dispute.openedBy,
    state: dispute.state,
    outcome: dispute.outcome,
    proposalId: dispute.proposalId,
    createdAt: dispute.createdAt.toISOString(),
    resolvedAt: dispute.resolvedAt?.toISOString() ?? null,
  };
}

export type HoldDetail = HoldView & {
  movements: {
    kind: MovementRow['kind'];
    amount: string;
    cause: MovementRow['cause'];
    journalId: string;
    payoutId: string | null;
    at: string;
  }[];
  dispute: DisputeView | null;
};

export async function getHoldDetail(db: Executor, id: string): Promise<HoldDetail> {
  const row = await getHold(db, id);
  const [movements, dispute] = await Promise.all([selectMovements(db, id), selectDispute(db, id)]);
  return {
    ...holdView(row),
    movements: movements.map((movement) => ({
      kind: movement.kind,
      amount: formatAmount(movement.amountMinor, row.precision),
      cause: movement.cause,
      journalId: movement.journalId,
      payoutId: movement.payoutId,
      at: movement.createdAt.toISOString(),
    })),
    dispute: dispute ? disputeView(dispute) : null,
  };
}

/** A hold another domain owns moves only through that domain's own calls. */
function managedRefusal(hold: HoldRow, caller: HoldManager | null): DomainError | undefined {
  if (hold.managedBy === caller) return undefined;
  return new DomainError(
    'escrow/hold-managed',
    `escrow hold ${hold.id} belongs to a ${hold.managedBy}: change it through /v1/${hold.managedBy}s`,
    { managedBy: hold.managedBy },
  );
}

/** Why a hold takes no release, refund or dispute now; undefined when it is live. */
function finishedRefusal(hold: HoldRow): DomainError | undefined {
  if (hold.state === 'closed')
    return new DomainError('escrow/hold-closed', `escrow hold ${hold.id} is closed`);
  if (hold.state === 'expired') {
    return new DomainError(
      'escrow/hold-expired',
      `escrow hold ${hold.id} expired at ${hold.expiresAt?.toISOString()}`,
    );
  }
  return undefined;
}

export type MoveKind = 'release' | 'refund';
/** A release paid on to a Stellar address; `screened` was read before the transaction opened. */
export type ReleasePayout = { destination: string; screened: ScreenedDestination };
/** A refusal that is recorded, so it commits instead of rolling back: the route answers with it. */
export type MoveOutcome =
  | { hold: HoldView; journalId: string; payoutId: string | null }
  | { refused: DomainError };

/**
 * Releases part or all of a hold to the payee, or refunds it to the payer. The remainder is read
 * under the hold's row lock (taken first: the rows naming the work come before the accounts in
 * the global lock order), so two concurrent moves never both spend it; an amount above it is
 * refused and nothing moves. A disputed hold refuses, and the attempt is recorded (audit row and
 * security event) in the caller's transaction, which commits: the caller answers with `refused`.
 */
export async function moveFromHold(
  tx: Tx,
  input: {
    holdId: string;
    kind: MoveKind;
    amount?: string | undefined;
    payout?: ReleasePayout | undefined;
    /** The domain that owns the hold, when it is the caller (escrow's routes pass none). */
    managedBy?: HoldManager | undefined;
  },
  actor: Actor,
): Promise<MoveOutcome> {
  assert(input.payout === undefined || input.kind === 'release', 'only a release goes to a payout');
  const [, hold] = await Promise.all([assertMoneyMovementAllowed(tx), selectHoldForUpdate(tx, input.holdId)]);
  if (!hold) throw new DomainError('escrow/hold-not-found', `no escrow hold ${input.holdId}`);
  const finished = managedRefusal(hold, input.managedBy ?? null) ?? finishedRefusal(hold);
  if (finished) throw finished;
  if (hold.state === 'disputed') return { refused: await recordDisputedAttempt(tx, hold, input, actor) };
  const remaining = remainingOf(hold);
  const amountMinor =
    input.amount === undefined ? remaining : parsePositiveAmount(input.amount, hold.precision);
  if (amountMinor > remaining) {
    throw new DomainError(
      'escrow/exceeds-remaining',
      `${formatAmount(amountMinor, hold.precision)} is more than the ${formatAmount(remaining, hold.precision)} that remains of escrow hold ${hold.id}`,
      { remaining: formatAmount(remaining, hold.precision) },
    );
  }
  const target = input.kind === 'release' ? hold.payeeAccountId : hold.payerAccountId;
  const escrow = await escrowAccount(tx, hold.asset);
  // A release to a payout also moves payee -> payout_clearing (acceptPayout): every account is
  // locked here at once, in the global order, so the payout's own lock finds them held.
  const clearing = input.payout ? await selectSystemAccount(tx, 'payout_clearing', hold.asset) : undefined;
  assert(!input.payout || clearing, `no payout_clearing account for ${hold.asset}`);
  const locked = await lockAccounts(tx, clearing ? [escrow, target, clearing.id] : [escrow, target]);
  const journalId = randomUUID();
  await postJournal(
    tx,
    {
      journalId,
      kind: input.kind === 'release' ? 'escrow_release' : 'escrow_refund',
      entries: [
        { accountId: escrow, amountMinor: -amountMinor },
        { accountId: target, amountMinor },
      ],
      reference: hold.id,
      requestId: actor.requestId,
    },
    locked,
  );
  const moved = await moveHold(tx, {
    holdId: hold.id,
    transition: amountMinor === remaining ? 'remainder_moved' : 'part_moved',
    guard: 'live',
    releaseMinor: input.kind === 'release' ? amountMinor : 0n,
    refundMinor: input.kind === 'refund' ? amountMinor : 0n,
    detail: `${input.kind} of ${formatAmount(amountMinor, hold.precision)}`,
  });
  assert(moved, `escrow hold ${hold.id} changed under its row lock`);
  const amount = formatAmount(amountMinor, hold.precision);
  // The payouts path itself (the function POST /v1/payouts calls): its checks, the kill switch and
  // the settlement engine apply; a refusal there rolls the whole release back.
  const payout = input.payout
    ? await acceptPayout(
        tx,
        { sourceAccountId: target, destination: input.payout.destination, asset: hold.asset, amount },
        actor,
        input.payout.screened,
      )
    : undefined;
  await insertMovement(tx, {
    holdId: hold.id,
    kind: input.kind,
    amountMinor,
    cause: 'request',
    journalId,
    payoutId: payout?.id,
  });
  const after = await reread(tx, hold.id);
  const paidOut = payout ? { payoutId: payout.id, destination: payout.destination } : {};
  await Promise.all([
    appendAudit(tx, {
      actor: actor.name,
      action: input.kind === 'release' ? 'escrow.released' : 'escrow.refunded',
      subjectType: 'escrow_hold',
      subjectId: hold.id,
      before: holdView(hold),
      after: { ...holdView(after), movedAmount: amount, journalId, ...paidOut },
      requestId: actor.requestId,
    }),
    emitEvents(
      tx,
      holdEvents(input.kind === 'release' ? 'escrow.released' : 'escrow.refunded', after, {
        movedAmount: amount,
        ...paidOut,
      }),
    ),
  ]);
  return { hold: holdView(after), journalId, payoutId: payout?.id ?? null };
}

async function recordDisputedAttempt(
  tx: Tx,
  hold: HoldRow,
  input: { kind: MoveKind; amount?: string | undefined },
  actor: Actor,
): Promise<DomainError> {
  const detail = {
    holdId: hold.id,
    attempted: input.kind,
    amount: input.amount ?? null,
    actor: actor.name,
    requestId: actor.requestId ?? null,
  };
  await Promise.all([
    appendAudit(tx, {
      actor: actor.name,
      action: `escrow.${input.kind}_refused_disputed`,
      subjectType: 'escrow_hold',
      subjectId: hold.id,
      after: detail,
      requestId: actor.requestId,
    }),
    insertSecurityEvent(tx, { kind: 'escrow.disputed_hold_attempt', source: 'escrow', detail }),
  ]);
  escrowDisputedAttempts.inc({ action: input.kind });
  return new DomainError(
    'escrow/hold-disputed',
    `escrow hold ${hold.id} is disputed: nothing moves until two admins resolve the dispute`,
  );
}

/** Freezes a live hold: release, refund and expiry are refused until the dispute is resolved. */
export async function openDispute(
  tx: Tx,
  input: { holdId: string; reason: string; evidenceRefs: readonly string[] },
  actor: Actor,
): Promise<HoldDetail> {
  const hold = await selectHoldForUpdate(tx, input.holdId);
  if (!hold) throw new DomainError('escrow/hold-not-found', `no escrow hold ${input.holdId}`);
  const finished = managedRefusal(hold, null) ?? finishedRefusal(hold);
  if (finished) throw finished;
  if (hold.state === 'disputed') {
    throw new DomainError('escrow/already-disputed', `escrow hold ${hold.id} is already disputed`);
  }
  const moved = await disputeHold(tx, hold.id, input.reason);
  assert(moved, `escrow hold ${hold.id} changed under its row lock`);
  const dispute = await insertDispute(tx, {
    id: randomUUID(),
    holdId: hold.id,
    reason: input.reason,
    evidenceRefs: input.evidenceRefs,
    openedBy: actor.name,
  });
  const after = await reread(tx, hold.id);
  await Promise.all([
    appendAudit(tx, {
      actor: actor.name,
      action: 'escrow.disputed',
      subjectType: 'escrow_hold',
      subjectId: hold.id,
      before: { state: hold.state },
      after: {
        state: after.state,
        disputeId: dispute.id,
        reason: input.reason,
        evidenceRefs: input.evidenceRefs,
      },
      requestId: actor.requestId,
    }),
    emitEvents(
      tx,
      holdEvents('escrow.disputed', after, {
        disputeId: dispute.id,
        reason: input.reason,
        evidenceRefs: input.evidenceRefs,
      }),
    ),
  ]);
  return getHoldDetail(tx, hold.id);
}

/**
 * Applies the expiry outcome of live holds past their `expiresAt`, oldest expiry first, at most
 * `limit` of them, in the caller's transaction. In the global lock order: the hold rows (claimed,
 * skipping ones another transaction holds), then every account of the batch in one call, then the
 * postings. A disputed hold is never claimed: its dispute decides. Returns how many expired.
 */
export async function expireDueHolds(tx: Tx, limit: number, actor = 'escrow-expiry'): Promise<number> {
  await recordDeferredExpiries(tx, limit, actor);
  const holds = await claimExpiredHolds(tx, limit);
  if (holds.length === 0) return 0;
  await assertMoneyMovementAllowed(tx);
  const escrows = new Map<string, string>();
  for (const asset of new Set(holds.map((hold) => hold.asset))) {
    escrows.set(asset, await escrowAccount(tx, asset));
  }
  const targetOf = (hold: HoldRow) =>
    hold.expiryOutcome === 'release' ? hold.payeeAccountId : hold.payerAccountId;
  await lockAccounts(tx, [...escrows.values(), ...holds.map(targetOf)]);
  const events: MerchantEvent[] = [];
  for (const hold of holds) {
    const escrow = escrows.get(hold.asset);
    assert(escrow !== undefined, `the escrow account of ${hold.asset} was looked up above`);
    const remaining = remainingOf(hold);
    const journalId = randomUUID();
    await postJournal(tx, {
      journalId,
      kind: hold.expiryOutcome === 'release' ? 'escrow_release' : 'escrow_refund',
      entries: [
        { accountId: escrow, amountMinor: -remaining },
        { accountId: targetOf(hold), amountMinor: remaining },
      ],
      reference: hold.id,
    });
    const moved = await moveHold(tx, {
      holdId: hold.id,
      transition: 'expired',
      guard: 'past',
      releaseMinor: hold.expiryOutcome === 'release' ? remaining : 0n,
      refundMinor: hold.expiryOutcome === 'refund' ? remaining : 0n,
      detail: hold.expiryOutcome,
    });
    assert(moved, `claimed escrow hold ${hold.id} did not expire`);
    await insertMovement(tx, {
      holdId: hold.id,
      kind: hold.expiryOutcome,
      amountMinor: remaining,
      cause: 'expiry',
      journalId,
    });
    const after = await reread(tx, hold.id);
    await appendAudit(tx, {
      actor,
      action: 'escrow.expired',
      subjectType: 'escrow_hold',
      subjectId: hold.id,
      before: holdView(hold),
      after: { ...holdView(after), outcome: hold.expiryOutcome, journalId },
    });
    events.push(
      ...holdEvents('escrow.expired', after, {
        outcome: hold.expiryOutcome,
        movedAmount: formatAmount(remaining, hold.precision),
      }),
    );
  }
  await emitEvents(tx, events);
  return holds.length;
}

/**
 * A disputed hold past its expiresAt does not expire: its dispute decides. The refusal is recorded
 * once per dispute, like a refused release: an audit row and a security event operators see.
 */
async function recordDeferredExpiries(tx: Tx, limit: number, actor: string): Promise<void> {
  for (const deferred of await markDeferredExpiries(tx, limit)) {
    const detail = {
      holdId: deferred.holdId,
      attempted: 'expiry',
      disputeId: deferred.disputeId,
      expiresAt: deferred.expiresAt.toISOString(),
      actor,
    };
    await Promise.all([
      appendAudit(tx, {
        actor,
        action: 'escrow.expiry_refused_disputed',
        subjectType: 'escrow_hold',
        subjectId: deferred.holdId,
        after: detail,
      }),
      insertSecurityEvent(tx, { kind: 'escrow.disputed_hold_attempt', source: 'escrow', detail }),
    ]);
    escrowDisputedAttempts.inc({ action: 'expiry' });
  }
}

export type ResolutionOutcome = 'release' | 'refund' | 'split';
export type ResolutionPayload = {
  holdId: string;
  outcome: ResolutionOutcome;
  releaseAmount: string;
  refundAmount: string;
};

function validateResolution(payload: unknown): ResolutionPayload {
  const candidate = payload as Partial<ResolutionPayload> | null;
  if (
    typeof candidate?.holdId !== 'string' ||
    !isUuid(candidate.holdId) ||
    (candidate.outcome !== 'release' && candidate.outcome !== 'refund' && candidate.outcome !== 'split') ||
    typeof candidate.releaseAmount !== 'string' ||
    typeof candidate.refundAmount !== 'string'
  ) {
    throw new DomainError(
      'request/validation',
      'a dispute resolution needs a holdId, an outcome (release, refund or split) and both amounts',
    );
  }
  return {
    holdId: candidate.holdId,
    outcome: candidate.outcome,
    releaseAmount: candidate.releaseAmount,
    refundAmount: candidate.refundAmount,
  };
}

function amountOrZero(text: string, precision: number): bigint {
  const parsed = parseAmount(text, { precision, allowZero: true });
  if (!parsed.ok) throw new DomainError('money/invalid-format', parsed.detail);
  return parsed.minor;
}

/** The minor amounts of a resolution, checked against the hold's remainder. */
function resolutionSplit(
  hold: HoldRow,
  payload: ResolutionPayload,
): { releaseMinor: bigint; refundMinor: bigint } {
  const releaseMinor = amountOrZero(payload.releaseAmount, hold.precision);
  const refundMinor = amountOrZero(payload.refundAmount, hold.precision);
  const remaining = remainingOf(hold);
  const shapeFits =
    payload.outcome === 'release'
      ? refundMinor === 0n
      : payload.outcome === 'refund'
        ? releaseMinor === 0n
        : releaseMinor > 0n && refundMinor > 0n;
  if (!shapeFits || releaseMinor + refundMinor !== remaining) {
    throw new DomainError(
      'escrow/resolution-mismatch',
      `a ${payload.outcome} must move exactly the ${formatAmount(remaining, hold.precision)} that remains of escrow hold ${hold.id}`,
      { remaining: formatAmount(remaining, hold.precision) },
    );
  }
  return { releaseMinor, refundMinor };
}

function requireDisputed(hold: HoldRow | undefined, holdId: string): HoldRow {
  if (!hold) throw new DomainError('escrow/hold-not-found', `no escrow hold ${holdId}`);
  if (hold.state !== 'disputed') {
    throw new DomainError('escrow/not-disputed', `escrow hold ${hold.id} is ${hold.state}, not disputed`);
  }
  return hold;
}

/**
 * Resolving a dispute moves money, so it is a proposal a second admin must approve, bound to the
 * exact amounts: `release` and `refund` name the whole remainder, a `split` both parts of it.
 */
export async function proposeResolution(
  tx: Tx,
  approvals: Approvals,
  input: {
    holdId: string;
    outcome: ResolutionOutcome;
    releaseAmount?: string | undefined;
    refundAmount?: string | undefined;
    reason: string;
    proposer: string;
    requestId: string | undefined;
  },
): Promise<ProposalView> {
  const hold = requireDisputed(await selectHold(tx, input.holdId), input.holdId);
  const remaining = formatAmount(remainingOf(hold), hold.precision);
  const zero = formatAmount(0n, hold.precision);
  const given: ResolutionPayload = {
    holdId: hold.id,
    outcome: input.outcome,
    releaseAmount:
      input.outcome === 'release' ? (input.releaseAmount ?? remaining) : (input.releaseAmount ?? zero),
    refundAmount:
      input.outcome === 'refund' ? (input.refundAmount ?? remaining) : (input.refundAmount ?? zero),
  };
  const { releaseMinor, refundMinor } = resolutionSplit(hold, given);
  return approvals.propose(tx, {
    action: resolveDisputeAction,
    payload: {
      ...given,
      releaseAmount: formatAmount(releaseMinor, hold.precision),
      refundAmount: formatAmount(refundMinor, hold.precision),
    },
    proposer: input.proposer,
    reason: input.reason,
    requestId: input.requestId,
  });
}

export function resolveDisputeProposalAction(): ProposalAction {
  return {
    name: resolveDisputeAction,
    approvalsRequired: 1,
    validate: (payload) => validateResolution(payload) as unknown as Payload,
    execute: async (tx, payload, context) => {
      await assertMoneyMovementAllowed(tx);
      const resolution = validateResolution(payload);
      const hold = requireDisputed(await selectHoldForUpdate(tx, resolution.holdId), resolution.holdId);
      const { releaseMinor, refundMinor } = resolutionSplit(hold, resolution);
      const escrow = await escrowAccount(tx, hold.asset);
      await lockAccounts(tx, [escrow, hold.payeeAccountId, hold.payerAccountId]);
      const legs = [
        { accountId: hold.payeeAccountId, amountMinor: releaseMinor },
        { accountId: hold.payerAccountId, amountMinor: refundMinor },
      ].filter((leg) => leg.amountMinor > 0n);
      const journalId = randomUUID();
      await postJournal(tx, {
        journalId,
        kind: 'escrow_dispute_resolution',
        entries: [{ accountId: escrow, amountMinor: -(releaseMinor + refundMinor) }, ...legs],
        reference: hold.id,
        requestId: context.requestId,
      });
      const moved = await moveHold(tx, {
        holdId: hold.id,
        transition: 'dispute_resolved',
        guard: 'any',
        releaseMinor,
        refundMinor,
        detail: `${resolution.outcome} (proposal ${context.proposalId})`,
      });
      assert(moved, `escrow hold ${hold.id} changed under its row lock`);
      const resolved = await resolveDisputeRow(tx, hold.id, resolution.outcome, context.proposalId);
      assert(resolved, `escrow hold ${hold.id} was disputed without an open dispute`);
      for (const [kind, amountMinor] of [
        ['release', releaseMinor],
        ['refund', refundMinor],
      ] as const) {
        if (amountMinor > 0n) {
          await insertMovement(tx, {
            holdId: hold.id,
            kind,
            amountMinor,
            cause: 'dispute_resolution',
            journalId,
          });
        }
      }
      const after = await reread(tx, hold.id);
      const actor = context.approvers.join(',');
      await Promise.all([
        appendAudit(tx, {
          actor,
          action: 'escrow.dispute_resolved',
          subjectType: 'escrow_hold',
          subjectId: hold.id,
          before: holdView(hold),
          after: {
            ...holdView(after),
            outcome: resolution.outcome,
            journalId,
            proposalId: context.proposalId,
            proposer: context.proposer,
          },
          requestId: context.requestId,
        }),
        emitEvents(
          tx,
          holdEvents('escrow.dispute_resolved', after, {
            outcome: resolution.outcome,
            releasedAmount: resolution.releaseAmount,
            refundedAmount: resolution.refundAmount,
          }),
        ),
      ]);
      return { holdId: hold.id, outcome: resolution.outcome, journalId };
    },
  };
}
