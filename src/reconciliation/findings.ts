import type { Tx } from '../platform/db/types.ts';
import { resolveFindingsExcept, upsertFindings } from './data.ts';

/**
 * What reconciliation can find. Each kind is owned by one detector; the subject is the
 * de-duplication key (one open finding per kind and subject). Names are fixed: alerts and
 * dashboards filter on them.
 */
export const findingKinds = [
  'ledger_imbalance',
  'account_balance_mismatch',
  'stuck_settlement',
  'double_payout',
  'unknown_outgoing_payment',
  'chain_ledger_drift',
  'escrow_leak',
  'deposit_mismatch',
  'stuck_release',
  'stream_run_stuck',
  'stream_overdue',
  'unusual_payout_volume',
] as const;
export type FindingKind = (typeof findingKinds)[number];

export const detectorNames = [
  'ledger_balance',
  'account_balances',
  'stuck_settlements',
  'outgoing_payments',
  'chain_balance',
  'escrow',
  'deposits',
  'payout_volume',
] as const;
export type DetectorName = (typeof detectorNames)[number];

/**
 * Kinds a detector closes by itself once the condition is gone (it re-examines the whole
 * condition every run). The others describe an event that happened (money left twice, a payment
 * nobody explains, a deposit the chain does not show): nothing later un-happens it, so they stay
 * open until a person has dealt with them.
 */
export const selfResolvingKinds: readonly FindingKind[] = [
  'ledger_imbalance',
  'account_balance_mismatch',
  'stuck_settlement',
  'chain_ledger_drift',
  'escrow_leak',
  'stuck_release',
  'stream_overdue',
];

export type Observation = { kind: FindingKind; subject: string; evidence: Record<string, unknown> };

/** What one detector run did to the findings table (counted into metrics after its commit). */
export class FindingsTally {
  readonly created = new Map<FindingKind, number>();
  seen = 0;
  resolved = 0;

  add(change: FindingsChange): void {
    for (const [kind, count] of change.created) this.created.set(kind, (this.created.get(kind) ?? 0) + count);
    this.seen += change.seen;
    this.resolved += change.resolved;
  }

  get createdCount(): number {
    return [...this.created.values()].reduce((sum, count) => sum + count, 0);
  }
}

export type FindingsChange = { created: Map<FindingKind, number>; seen: number; resolved: number };

export const noChange = (): FindingsChange => ({ created: new Map(), seen: 0, resolved: 0 });

/**
 * Stores what a run observed: new findings are created, open ones updated (last seen, one more
 * occurrence, evidence merged key by key). With `resolveKind`, the open findings of that kind
 * the run did not observe are resolved: only for a run that examined the whole condition.
 */
export async function recordFindings(
  tx: Tx,
  observations: readonly Observation[],
  options: { resolveKind?: FindingKind } = {},
): Promise<FindingsChange> {
  const unique = new Map<string, Observation>();
  for (const observation of observations) {
    const key = `${observation.kind}\u0000${observation.subject}`;
    const earlier = unique.get(key);
    unique.set(
      key,
      earlier ? { ...observation, evidence: { ...earlier.evidence, ...observation.evidence } } : observation,
    );
  }
  const rows = unique.size === 0 ? [] : await upsertFindings(tx, [...unique.values()]);
  const created = new Map<FindingKind, number>();
  for (const row of rows) if (row.created) created.set(row.kind, (created.get(row.kind) ?? 0) + 1);
  let resolved = 0;
  if (options.resolveKind !== undefined) {
    const kind = options.resolveKind;
    const subjects = [...unique.values()].filter((o) => o.kind === kind).map((o) => o.subject);
    resolved = await resolveFindingsExcept(tx, kind, subjects);
  }
  return { created, seen: rows.length, resolved };
}
