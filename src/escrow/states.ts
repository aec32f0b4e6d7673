/**
 * The escrow hold state machine, as data. Every allowed transition is listed with the reason it
 * happens; `data.ts` guards each update with `where state = any(<allowed sources>)` and, for the
 * ones a live hold takes, `now() < expires_at` in the same statement, so a transition not listed
 * here cannot happen, and none happens to a hold past its expiry but the expiry itself.
 */

export const holdStates = ['held', 'partially_released', 'disputed', 'closed', 'expired'] as const;
export type HoldState = (typeof holdStates)[number];

/** Money of these holds still sits in `escrow`: their remainders add up to its balance. */
export const openStates = ['held', 'partially_released', 'disputed'] as const satisfies readonly HoldState[];
/** Release, refund, dispute and expiry start from these. */
export const liveStates = ['held', 'partially_released'] as const satisfies readonly HoldState[];

export const transitions = {
  part_moved: {
    from: liveStates,
    to: 'partially_released',
    reason: 'part of the amount was released or refunded',
  },
  remainder_moved: { from: liveStates, to: 'closed', reason: 'the remainder reached zero' },
  disputed: { from: liveStates, to: 'disputed', reason: 'a dispute froze the hold' },
  dispute_resolved: {
    from: ['disputed'],
    to: 'closed',
    reason: 'two admins resolved the dispute; the remainder moved',
  },
  expired: {
    from: liveStates,
    to: 'expired',
    reason: 'expiresAt passed; the expiry outcome moved the remainder',
  },
} as const satisfies Record<string, { from: readonly HoldState[]; to: HoldState; reason: string }>;

export type Transition = keyof typeof transitions;

/** What a hold does when expiresAt passes (refund by default). */
export const expiryOutcomes = ['refund', 'release'] as const;
export type ExpiryOutcome = (typeof expiryOutcomes)[number];
