/**
 * The payout state machine, as data. Every allowed transition is listed with the reason it
 * happens; `data.ts` guards each update with `where state = any(<allowed sources>)`, so a
 * transition not listed here cannot happen, whatever the caller does.
 */

export const payoutStates = [
  'pending_approval',
  'accepted',
  'submitted',
  'settled',
  'failed',
  'manual_review',
  'cancelled',
] as const;
export type PayoutState = (typeof payoutStates)[number];

export const terminalStates: readonly PayoutState[] = ['settled', 'failed', 'cancelled'];
/** Not yet settled or failed: the money sits in `payout_clearing`. Triage and detectors watch these. */
export const openStates = [
  'pending_approval',
  'accepted',
  'submitted',
  'manual_review',
] as const satisfies readonly PayoutState[];
/**
 * Open and in the settlement path: a payout waiting here past a threshold is stuck. A payout in
 * `pending_approval` waits for a person, and its proposal's expiry bounds the wait (then refunds).
 */
export const settlingStates = [
  'accepted',
  'submitted',
  'manual_review',
] as const satisfies readonly PayoutState[];
/** The engine still owns it: a payout waiting for the network stays in one of these. */
export const engineStates = ['accepted', 'submitted'] as const satisfies readonly PayoutState[];
/** A transaction paying it may have applied on chain before the ledger booked the outcome. */
export const maybeOnChainStates = ['submitted', 'manual_review'] as const satisfies readonly PayoutState[];

/** Not yet handed to the engine's transaction: cancelling refunds it and nothing can pay it. */
export const cancellableStates = ['pending_approval', 'accepted'] as const satisfies readonly PayoutState[];

export const transitions = {
  approval_granted: {
    from: ['pending_approval'],
    to: 'accepted',
    reason: 'a second admin approved it over the approval threshold; it is queued for settlement',
  },
  approval_refused: {
    from: ['pending_approval'],
    to: 'cancelled',
    reason: 'its approval was rejected or expired; the amount is refunded',
  },
  cancelled: {
    from: cancellableStates,
    to: 'cancelled',
    reason: 'cancelled before submission; the amount is refunded',
  },
  attempt_built: {
    from: ['accepted'],
    to: 'submitted',
    reason: 'a transaction paying it was built and stored',
  },
  attempt_succeeded: { from: ['submitted'], to: 'settled', reason: 'the transaction applied on chain' },
  operation_failed: {
    from: ['submitted'],
    to: 'failed',
    reason: 'the network refused its payment for good; the amount is refunded',
  },
  attempt_retry: {
    from: ['submitted'],
    to: 'accepted',
    reason:
      'its transaction can never apply (failed for another payment, refused, or window passed); it will be rebuilt',
  },
  outcome_unknown: {
    from: ['submitted'],
    to: 'manual_review',
    reason: 'the outcome could not be determined within the bounded time',
  },
  confirmed_sent: { from: ['manual_review'], to: 'settled', reason: 'two admins confirmed it was sent' },
  refunded_failed: {
    from: ['manual_review'],
    to: 'failed',
    reason: 'two admins confirmed it was not sent; refunded',
  },
} as const satisfies Record<string, { from: readonly PayoutState[]; to: PayoutState; reason: string }>;

export type Transition = keyof typeof transitions;
