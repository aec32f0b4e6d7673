import { randomUUID } from 'node:crypto';
import { formatAmount } from '../money/money.ts';
import type { PayoutRow } from '../payouts/data.ts';
import { type Transition, transitions } from '../payouts/states.ts';
import { assert } from '../platform/assert.ts';
import type { Tx } from '../platform/db/types.ts';
import { insertEventsWithDeliveries } from './data.ts';
import { isMerchantEventType, type MerchantEventType } from './event-types.ts';

/**
 * What the money path calls, inside its own transaction, when something a merchant hears about
 * happens. One statement whatever the number of events or endpoints (see
 * `insertEventsWithDeliveries`); if the change rolls back, so do the event and its deliveries.
 */

export const deliverTask = 'merchant_webhooks_deliver';
export const deliveryJobKeyPrefix = 'merchant-webhook-delivery:';
/**
 * graphile-worker's own retries, for a run that throws (the database was unreachable). Failed
 * HTTP attempts are not thrown: they are rescheduled by the delivery itself with its backoff.
 */
export const deliverJobAttemptsMax = 10;
/** Events per statement: a settlement batch (at most 100 payouts) is one statement. */
export const eventsPerStatementMax = 100;

export type MerchantEvent = {
  type: MerchantEventType;
  /** The account the event is about: endpoints that name an owner receive only their accounts' events. */
  accountId: string;
  data: Readonly<Record<string, unknown>>;
};

export async function emitEvents(tx: Tx, events: readonly MerchantEvent[]): Promise<void> {
  for (let start = 0; start < events.length; start += eventsPerStatementMax) {
    await insertEvents(tx, events.slice(start, start + eventsPerStatementMax));
  }
}

async function insertEvents(tx: Tx, events: readonly MerchantEvent[]): Promise<void> {
  const timestamp = new Date().toISOString();
  const rows = events.map((event) => {
    assert(isMerchantEventType(event.type), `unknown merchant event type ${event.type}`);
    return {
      id: randomUUID(),
      type: event.type,
      accountId: event.accountId,
      // The Standard Webhooks payload shape: type, timestamp, data.
      body: JSON.stringify({ type: event.type, timestamp, data: event.data }),
    };
  });
  await insertEventsWithDeliveries(tx, rows, {
    task: deliverTask,
    keyPrefix: deliveryJobKeyPrefix,
    attemptsMax: deliverJobAttemptsMax,
  });
}

export async function emitEvent(tx: Tx, event: MerchantEvent): Promise<void> {
  await emitEvents(tx, [event]);
}

export function depositCreditedEvent(deposit: {
  id: string;
  provider: string;
  reference: string;
  accountId: string;
  asset: string;
  amountMinor: bigint;
  precision: number;
  source: string;
}): MerchantEvent {
  return {
    type: 'deposit.credited',
    accountId: deposit.accountId,
    data: {
      depositId: deposit.id,
      accountId: deposit.accountId,
      asset: deposit.asset,
      amount: formatAmount(deposit.amountMinor, deposit.precision),
      provider: deposit.provider,
      reference: deposit.reference,
      source: deposit.source,
    },
  };
}

export function payoutFinishedEvent(
  type: 'payout.settled' | 'payout.failed' | 'payout.cancelled',
  payout: PayoutRow,
  transition: Transition,
  detail: string | undefined,
): MerchantEvent {
  const reason = transitions[transition].reason;
  return {
    type,
    accountId: payout.sourceAccountId,
    data: {
      payoutId: payout.id,
      sourceAccountId: payout.sourceAccountId,
      destination: payout.destination,
      memo: { type: payout.memoType, value: payout.memoValue },
      asset: payout.asset,
      amount: formatAmount(payout.amountMinor, payout.precision),
      state: transitions[transition].to,
      reason: detail ? `${reason}: ${detail}` : reason,
    },
  };
}
