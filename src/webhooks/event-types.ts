/**
 * The event types a merchant endpoint can subscribe to, as data: a new type is one line here plus
 * its `emitEvent` call where the change happens. A type is never renamed or reused, since
 * merchants' code switches on it.
 */
export const merchantEventTypes = {
  'deposit.credited': 'a deposit was credited to a customer or merchant account',
  'payout.settled': 'a payout was paid on the Stellar network',
  'payout.failed': 'a payout failed for good and its amount was refunded to the source account',
  'payout.cancelled':
    'a payout was cancelled before any transaction paid it (or its approval was refused); the amount was refunded',
  'escrow.held': 'an amount moved from a payer account into an escrow hold',
  'escrow.released': 'part or all of an escrow hold was released to the payee',
  'escrow.refunded': 'part or all of an escrow hold was refunded to the payer',
  'escrow.disputed': 'a dispute froze an escrow hold',
  'escrow.dispute_resolved': 'two admins resolved the dispute of an escrow hold; its remainder moved',
  'escrow.expired': 'an escrow hold passed its expiresAt and its expiry outcome moved the remainder',
  'stream.created': 'a payer funded a payment stream: its total moved into an escrow hold',
  'stream.settled': 'a settlement paid a stream recipient what had accrued since the last one',
  'stream.cancelled': 'a stream was cancelled: what had accrued was settled and the rest refunded',
  'stream.completed': 'a stream passed its end and its whole total was paid to the recipient',
} as const satisfies Record<string, string>;

export type MerchantEventType = keyof typeof merchantEventTypes;

export const merchantEventTypeNames = Object.keys(merchantEventTypes) as MerchantEventType[];

export function isMerchantEventType(value: string): value is MerchantEventType {
  return Object.hasOwn(merchantEventTypes, value);
}
