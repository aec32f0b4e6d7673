/**
 * The stream state machine, as data. Stored states are `active`, `completed` and `cancelled`;
 * every allowed transition is listed with its reason, `data.ts` guards each update with
 * `where state = any(<allowed sources>)` and checks the row count, so a transition not listed
 * here cannot happen. Forbidden, therefore: anything out of `completed` or `cancelled` (both are
 * final), and `active` → `completed` before the whole total is settled (a check constraint).
 *
 * What a reader sees (`status`) refines `active` by the clock, as Sablier's statuses do: `pending`
 * before the start, `streaming` until the end, `ended` once everything has accrued and the last
 * settlement is due. It is never stored, so no job has to move a stream from one to the next.
 */

export const streamStates = ['active', 'completed', 'cancelled'] as const;
export type StreamState = (typeof streamStates)[number];

export const streamStatuses = ['pending', 'streaming', 'ended', 'completed', 'cancelled'] as const;
export type StreamStatus = (typeof streamStatuses)[number];

export const transitions = {
  settled: {
    from: ['active'],
    to: 'active',
    reason: 'a settlement run paid what had accrued since the last settlement',
  },
  completed: {
    from: ['active'],
    to: 'completed',
    reason: 'the end passed and a settlement run paid the remainder of the total',
  },
  cancelled: {
    from: ['active'],
    to: 'cancelled',
    reason: 'cancelled: what had accrued was settled and the rest refunded to the payer',
  },
} as const satisfies Record<string, { from: readonly StreamState[]; to: StreamState; reason: string }>;

export type Transition = keyof typeof transitions;

/** What a reader sees of a stream at `at` (ms since the epoch, like the schedule). */
export function statusAt(
  state: StreamState,
  schedule: { startMs: bigint; endMs: bigint },
  atMs: bigint,
): StreamStatus {
  if (state !== 'active') return state;
  if (atMs < schedule.startMs) return 'pending';
  return atMs < schedule.endMs ? 'streaming' : 'ended';
}

/**
 * A settlement run's outcomes, as data. A run is `running` from its start; each finish moves it
 * out of `running` only (`data.ts` guards every update with `outcome = 'running'`), so a finished
 * run never changes again.
 */
export const runOutcomes = {
  succeeded: {
    from: ['running'],
    reason: 'every due stream it claimed was settled or waits for its minimum',
  },
  partial: { from: ['running'], reason: 'a stream was refused: its savepoint rolled back and it stays due' },
  failed: {
    from: ['running'],
    reason: 'an error that is not a refusal: its batch rolled back, the job retries',
  },
  abandoned: {
    from: ['running'],
    reason:
      'still running past STREAM_RUN_STUCK_AFTER_SECONDS (a crashed or hung process): closed by the stuck_settlements detector; its committed batches stay settled, the next run settles the rest',
  },
} as const satisfies Record<string, { from: readonly ['running']; reason: string }>;

export type RunFinish = keyof typeof runOutcomes;
