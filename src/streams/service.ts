import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { selectHoldForUpdate } from '../escrow/data.ts';
import { type Actor, createHold, moveFromHold } from '../escrow/service.ts';
import { selectAccount, selectSystemAccount } from '../ledger/data.ts';
import { lockAccounts } from '../ledger/service.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import { formatAmount, parseAmount } from '../money/money.ts';
import {
  checkDestinationPayable,
  type ScreenedDestination,
  unscreenedDestination,
} from '../payouts/destinations.ts';
import { checkDestination } from '../payouts/memo.ts';
import { assert } from '../platform/assert.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { stellarDecimals } from '../stellar/units.ts';
import type { MerchantEventType } from '../webhooks/event-types.ts';
import { emitEvents } from '../webhooks/events.ts';
import { accruedAt, nextSettlementAfter, type SettlementSchedule } from './accrual.ts';
import {
  insertSettlement,
  insertStream,
  moveStream,
  type SettlementRow,
  type StreamRow,
  selectSettlements,
  selectStream,
  selectStreamForUpdate,
} from './data.ts';
import { type StreamStatus, statusAt } from './states.ts';

/** The longest a stream may run, and the furthest its end may lie: ten years. */
export const scheduleDaysMax = 3_650;
/** Runs are a minute apart: a shorter interval would not settle more often. */
export const intervalSecondsMin = 60;
export const intervalSecondsMax = 31_536_000;
/** Settlements listed with one stream (a ten-year stream settled hourly has 87,600). */
export const settlementsShownMax = 100;

const dayMs = 86_400_000;

export type StreamInput = {
  payerAccountId: string;
  recipientAccountId?: string | undefined;
  recipientAddress?: string | undefined;
  asset: string;
  totalAmount: string;
  startAt: string;
  cliffAt?: string | undefined;
  endAt: string;
  settlement: { intervalSeconds: number; minimumAmount?: string | undefined };
  reference?: string | undefined;
  metadata?: Record<string, string> | undefined;
};

export type StreamView = {
  id: string;
  holdId: string;
  payerAccountId: string;
  recipientAccountId: string | null;
  recipientAddress: string | null;
  asset: string;
  total: string;
  accrued: string;
  settled: string;
  withdrawable: string;
  refunded: string;
  startAt: string;
  cliffAt: string | null;
  endAt: string;
  settlement: { intervalSeconds: number; minimumAmount: string };
  nextSettlementAt: string | null;
  cancelledAt: string | null;
  status: StreamStatus;
  stateReason: string;
  reference: string | null;
  metadata: Record<string, string>;
  /** The instant accrued and withdrawable are computed at. */
  asOf: string;
  createdAt: string;
  updatedAt: string;
};

const msOf = (date: Date) => BigInt(date.getTime());

export function scheduleOf(stream: StreamRow): SettlementSchedule {
  return {
    totalMinor: stream.totalMinor,
    startMs: msOf(stream.startAt),
    cliffMs: stream.cliffAt ? msOf(stream.cliffAt) : null,
    endMs: msOf(stream.endAt),
    intervalMs: BigInt(stream.intervalSeconds) * 1_000n,
  };
}

/**
 * What has accrued at `at`: frozen at the cancellation for a cancelled stream, the total for a
 * completed one. Never below what was settled: a run given a clock ahead of the reader's (a
 * drill's) has paid up to its own instant.
 */
export function accruedOf(stream: StreamRow, at: Date): bigint {
  if (stream.state === 'completed') return stream.totalMinor;
  const accrued = accruedAt(scheduleOf(stream), msOf(stream.cancelledAt ?? at));
  return accrued > stream.settledMinor ? accrued : stream.settledMinor;
}

export function streamView(stream: StreamRow, at: Date): StreamView {
  const format = (minor: bigint) => formatAmount(minor, stream.precision);
  const accrued = accruedOf(stream, at);
  const schedule = scheduleOf(stream);
  return {
    id: stream.id,
    holdId: stream.holdId,
    payerAccountId: stream.payerAccountId,
    recipientAccountId: stream.recipientAccountId,
    recipientAddress: stream.recipientAddress,
    asset: stream.asset,
    total: format(stream.totalMinor),
    accrued: format(accrued),
    settled: format(stream.settledMinor),
    withdrawable: format(accrued - stream.settledMinor),
    refunded: format(stream.refundedMinor),
    startAt: stream.startAt.toISOString(),
    cliffAt: stream.cliffAt?.toISOString() ?? null,
    endAt: stream.endAt.toISOString(),
    settlement: { intervalSeconds: stream.intervalSeconds, minimumAmount: format(stream.minimumMinor) },
    nextSettlementAt: stream.nextSettlementAt?.toISOString() ?? null,
    cancelledAt: stream.cancelledAt?.toISOString() ?? null,
    status: statusAt(stream.state, schedule, msOf(at)),
    stateReason: stream.stateReason,
    reference: stream.reference,
    metadata: stream.metadata,
    asOf: at.toISOString(),
    createdAt: stream.createdAt.toISOString(),
    updatedAt: stream.updatedAt.toISOString(),
  };
}

/** The database's clock: every instance reads the same one. */
export async function databaseNow(db: Executor): Promise<Date> {
  const [row] = await db<{ now: Date }[]>`select now() as now`;
  assert(row, 'select now() returned no row');
  return row.now;
}

async function reread(db: Executor, id: string): Promise<StreamRow> {
  const row = await selectStream(db, id);
  assert(row, `stream ${id} vanished`);
  return row;
}

/** One event about each side: the payer's account and, when it is one, the recipient's. */
export function streamEvents(
  type: MerchantEventType,
  view: StreamView,
  data: Readonly<Record<string, unknown>> = {},
) {
  const body = { streamId: view.id, ...view, ...data };
  const accounts = [view.payerAccountId, view.recipientAccountId].filter((id): id is string => id !== null);
  return accounts.map((accountId) => ({ type, accountId, data: body }));
}

function invalidSchedule(detail: string): DomainError {
  return new DomainError('streams/invalid-schedule', detail);
}

function instantOf(name: string, text: string): Date {
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) throw invalidSchedule(`${name} is not a date-time`);
  return at;
}

/** start < end, start ≤ cliff ≤ end, end after now and within the limit, a span within it too. */
function checkSchedule(input: StreamInput, now: Date): { startAt: Date; cliffAt: Date | null; endAt: Date } {
  const startAt = instantOf('startAt', input.startAt);
  const endAt = instantOf('endAt', input.endAt);
  const cliffAt = input.cliffAt === undefined ? null : instantOf('cliffAt', input.cliffAt);
  if (startAt >= endAt) throw invalidSchedule('startAt must be before endAt');
  if (cliffAt && (cliffAt < startAt || cliffAt > endAt)) {
    throw invalidSchedule('cliffAt must lie between startAt and endAt');
  }
  const limitMs = scheduleDaysMax * dayMs;
  if (
    endAt <= now ||
    endAt.getTime() > now.getTime() + limitMs ||
    endAt.getTime() - startAt.getTime() > limitMs
  ) {
    throw invalidSchedule(
      `endAt must be in the future, and the stream at most ${scheduleDaysMax} days long and ahead`,
    );
  }
  return { startAt, cliffAt, endAt };
}

function checkRecipient(input: StreamInput, precision: number): void {
  const given = [input.recipientAccountId, input.recipientAddress].filter((value) => value !== undefined);
  if (given.length !== 1) {
    throw new DomainError(
      'streams/invalid-recipient',
      'name exactly one of recipientAccountId and recipientAddress',
    );
  }
  if (input.recipientAccountId === input.payerAccountId) {
    throw new DomainError('streams/invalid-recipient', 'the recipient account must not be the payer');
  }
  if (input.recipientAddress !== undefined) {
    checkDestination(input.recipientAddress);
    if (precision > stellarDecimals) {
      throw new DomainError(
        'streams/invalid-recipient',
        `a Stellar recipient needs an asset of at most ${stellarDecimals} decimals: every settlement is a payout`,
      );
    }
  }
}

function minimumOf(text: string | undefined, precision: number, totalMinor: bigint): bigint {
  if (text === undefined) return 0n;
  const parsed = parseAmount(text, { precision, allowZero: true });
  if (!parsed.ok) throw new DomainError('money/invalid-format', parsed.detail);
  if (parsed.minor > totalMinor) throw invalidSchedule('minimumAmount must not be above totalAmount');
  return parsed.minor;
}

/**
 * Funds a stream: the total leaves the payer for an escrow hold the stream owns (escrow's
 * createHold: its party checks and the ledger's `ledger/insufficient-funds` apply), with the
 * stream row, its audit row and `stream.created`, all in the caller's transaction. A Stellar
 * recipient was screened before the transaction, as a payout's destination is.
 */
export async function createStream(
  tx: Tx,
  input: StreamInput,
  actor: Actor,
  screened: ScreenedDestination = unscreenedDestination,
): Promise<StreamView> {
  const [payer, now] = await Promise.all([selectAccount(tx, input.payerAccountId), databaseNow(tx)]);
  if (!payer) throw new DomainError('ledger/account-not-found', `no account ${input.payerAccountId}`);
  checkRecipient(input, payer.precision);
  const totalMinor = parsePositiveAmount(input.totalAmount, payer.precision);
  const minimumMinor = minimumOf(input.settlement.minimumAmount, payer.precision, totalMinor);
  const { startAt, cliffAt, endAt } = checkSchedule(input, now);
  if (input.recipientAddress !== undefined) {
    checkDestinationPayable(screened, {
      destination: input.recipientAddress,
      asset: input.asset,
      amountMinor: totalMinor,
      precision: payer.precision,
    });
  }
  const id = randomUUID();
  const hold = await createHold(
    tx,
    {
      payerAccountId: payer.id,
      payeeAccountId: input.recipientAccountId ?? payer.id,
      asset: input.asset,
      amount: formatAmount(totalMinor, payer.precision),
      reference: `stream:${id}`,
      metadata: input.metadata ?? {},
    },
    actor,
    'stream',
  );
  const intervalMs = BigInt(input.settlement.intervalSeconds) * 1_000n;
  const schedule = {
    totalMinor,
    startMs: msOf(startAt),
    cliffMs: cliffAt ? msOf(cliffAt) : null,
    endMs: msOf(endAt),
  };
  await insertStream(tx, {
    id,
    holdId: hold.id,
    payerAccountId: payer.id,
    recipientAccountId: input.recipientAccountId ?? null,
    recipientAddress: input.recipientAddress ?? null,
    asset: payer.asset,
    totalMinor,
    startAt,
    cliffAt,
    endAt,
    intervalSeconds: input.settlement.intervalSeconds,
    minimumMinor,
    nextSettlementAt: new Date(Number(nextSettlementAfter({ ...schedule, intervalMs }, schedule.startMs))),
    reference: input.reference ?? null,
    metadata: hold.metadata,
    createdBy: actor.name,
    requestId: actor.requestId ?? null,
  });
  const view = streamView(await reread(tx, id), now);
  await Promise.all([
    appendAudit(tx, {
      actor: actor.name,
      action: 'stream.created',
      subjectType: 'stream',
      subjectId: id,
      after: view,
      requestId: actor.requestId,
    }),
    emitEvents(tx, streamEvents('stream.created', view)),
  ]);
  return view;
}

export async function getStream(db: Executor, id: string): Promise<StreamRow> {
  const row = await selectStream(db, id);
  if (!row) throw new DomainError('streams/not-found', `no stream ${id}`);
  return row;
}

export type StreamDetail = StreamView & {
  settlements: {
    cause: SettlementRow['cause'];
    runId: string | null;
    periodIndex: number | null;
    amount: string;
    asOf: string;
    journalId: string;
    payoutId: string | null;
    at: string;
  }[];
};

export async function getStreamDetail(db: Executor, id: string, at: Date): Promise<StreamDetail> {
  const row = await getStream(db, id);
  const settlements = await selectSettlements(db, id, settlementsShownMax);
  return {
    ...streamView(row, at),
    settlements: settlements.map((settlement) => ({
      cause: settlement.cause,
      runId: settlement.runId,
      periodIndex: settlement.periodIndex,
      amount: formatAmount(settlement.amountMinor, row.precision),
      asOf: settlement.asOf.toISOString(),
      journalId: settlement.journalId,
      payoutId: settlement.payoutId,
      at: settlement.createdAt.toISOString(),
    })),
  };
}

/**
 * Locks, in one call and so in the global order, every account the streams' settlements and
 * refunds can touch: escrow, payer, recipient, and payout_clearing for a Stellar recipient. The
 * stream and hold rows are locked before it (claim or cancellation): rows naming the work first.
 */
export async function lockStreamAccounts(tx: Tx, streams: readonly StreamRow[]): Promise<void> {
  const system = new Map<string, string>();
  const systemAccount = async (type: 'escrow' | 'payout_clearing', asset: string) => {
    const key = `${type}:${asset}`;
    const known = system.get(key);
    if (known) return known;
    const account = await selectSystemAccount(tx, type, asset);
    assert(account, `no ${type} account for ${asset}: system accounts missing`);
    system.set(key, account.id);
    return account.id;
  };
  const ids: string[] = [];
  for (const stream of streams) {
    ids.push(stream.payerAccountId, await systemAccount('escrow', stream.asset));
    if (stream.recipientAccountId) ids.push(stream.recipientAccountId);
    else ids.push(await systemAccount('payout_clearing', stream.asset));
  }
  await lockAccounts(tx, ids);
}

/**
 * Pays `amountMinor` of the stream's hold to its recipient through escrow's release: to the
 * recipient account, or to the payer and on as a payout to the Stellar address (escrow's
 * release-to-address path and acceptPayout). The caller holds the stream's row lock.
 */
export async function payRecipient(
  tx: Tx,
  stream: StreamRow,
  amountMinor: bigint,
  actor: Actor,
): Promise<{ journalId: string; payoutId: string | null }> {
  const outcome = await moveFromHold(
    tx,
    {
      holdId: stream.holdId,
      kind: 'release',
      amount: formatAmount(amountMinor, stream.precision),
      payout: stream.recipientAddress
        ? { destination: stream.recipientAddress, screened: unscreenedDestination }
        : undefined,
      managedBy: 'stream',
    },
    actor,
  );
  // A stream's hold is never disputed: escrow refuses a dispute on a hold a stream owns.
  assert(!('refused' in outcome), `stream ${stream.id}: its hold refused a release`);
  return { journalId: outcome.journalId, payoutId: outcome.payoutId };
}

/**
 * Cancels a stream at `at` (the database's clock for a request): under its row lock, pays the
 * recipient what accrued and was not yet settled, refunds the rest of the total to the payer, and
 * finishes the stream, with the audit row and `stream.cancelled`, in the caller's transaction.
 * A finished stream, or one past its end (everything accrued), refuses with its own code.
 */
export async function cancelStream(tx: Tx, id: string, actor: Actor, at: Date): Promise<StreamView> {
  const stream = await selectStreamForUpdate(tx, id);
  if (!stream) throw new DomainError('streams/not-found', `no stream ${id}`);
  if (stream.state === 'cancelled') {
    throw new DomainError(
      'streams/already-cancelled',
      `stream ${id} was cancelled at ${stream.cancelledAt?.toISOString()}`,
    );
  }
  if (stream.state === 'completed') {
    throw new DomainError('streams/already-completed', `stream ${id} is completed: its total was paid`);
  }
  if (at >= stream.endAt) {
    throw new DomainError(
      'streams/ended',
      `stream ${id} ended at ${stream.endAt.toISOString()}: everything accrued, and the next settlement run pays it`,
    );
  }
  await selectHoldForUpdate(tx, stream.holdId);
  await lockStreamAccounts(tx, [stream]);
  const before = streamView(stream, at);
  const accrued = accruedOf(stream, at);
  const dueMinor = accrued - stream.settledMinor;
  const refundMinor = stream.totalMinor - accrued;
  if (dueMinor > 0n) {
    const paid = await payRecipient(tx, stream, dueMinor, actor);
    await insertSettlement(tx, {
      streamId: id,
      cause: 'cancel',
      runId: null,
      periodIndex: null,
      amountMinor: dueMinor,
      asOf: at,
      ...paid,
    });
  }
  // Before the end the floor keeps accrued below the total: something always goes back.
  assert(refundMinor > 0n, `stream ${id}: nothing to refund before its end`);
  await moveFromHold(
    tx,
    {
      holdId: stream.holdId,
      kind: 'refund',
      amount: formatAmount(refundMinor, stream.precision),
      managedBy: 'stream',
    },
    actor,
  );
  const moved = await moveStream(tx, {
    streamId: id,
    transition: 'cancelled',
    settledMinor: dueMinor,
    refundedMinor: refundMinor,
    nextSettlementAt: null,
    cancelledAt: at,
  });
  assert(moved, `stream ${id} changed under its row lock`);
  const after = streamView(await reread(tx, id), at);
  const amounts = {
    settledAmount: formatAmount(dueMinor, stream.precision),
    refundedAmount: formatAmount(refundMinor, stream.precision),
  };
  await Promise.all([
    appendAudit(tx, {
      actor: actor.name,
      action: 'stream.cancelled',
      subjectType: 'stream',
      subjectId: id,
      before,
      after: { ...after, ...amounts },
      requestId: actor.requestId,
    }),
    emitEvents(tx, streamEvents('stream.cancelled', after, amounts)),
  ]);
  return after;
}
