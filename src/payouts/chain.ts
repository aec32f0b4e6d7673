/**
 * What the settlement engine needs from the Stellar network, and nothing more. The engine is
 * written against this port; `src/stellar/` implements it with failover across Horizon and RPC.
 */

/** `oldest`: the oldest ledger the answering path still holds (Horizon and RPC keep a window of history). */
export type ChainLedger = { sequence: number; closeTime: number; oldest?: number };

export type ResultCodes = { transaction: string; operations: string[] };

/** Outcome of sending a signed envelope. */
export type SubmitOutcome =
  /** Applied successfully in `ledger`. */
  | { kind: 'success'; ledger: number }
  /** Applied in `ledger` but failed: the fee and the sequence number are consumed, no payment happened. */
  | { kind: 'failed'; ledger: number; codes: ResultCodes }
  /** Refused at admission: it was not applied by this submission. */
  | { kind: 'rejected'; codes: ResultCodes }
  /** It may or may not have been accepted (timeout, 504, dropped connection). */
  | { kind: 'ambiguous'; reason: string }
  /** No path took the request. */
  | { kind: 'unavailable'; reason: string };

/** Outcome of looking a transaction up by hash. */
export type LookupOutcome =
  | { kind: 'success'; ledger: number }
  | { kind: 'failed'; ledger: number; codes: ResultCodes }
  /** Not found by a path that had ingested `latest` before it answered. */
  | { kind: 'not_found'; latest: ChainLedger }
  /** No path could answer. */
  | { kind: 'unknown'; reason: string };

/** What the network says about the account a payout pays (the G account under a muxed address). */
export type DestinationAccount =
  /** A path that answered does not know the account, and no path found it. */
  | { kind: 'missing' }
  /** `trusted`: it can receive the asset (always for XLM); undefined when the answering path cannot tell. */
  | { kind: 'exists'; trusted: boolean | undefined }
  /** No path answered: nothing may be concluded. */
  | { kind: 'unknown'; reason: string };

export type SettlementChain = {
  /** The account's current sequence number; undefined when the account does not exist. */
  accountSequence(accountId: string): Promise<bigint | undefined>;
  /** Whether `accountId` exists and can receive `asset` (`XLM` or `CODE:ISSUER`). Never throws. */
  destination(accountId: string, asset: string): Promise<DestinationAccount>;
  latestLedger(): Promise<ChainLedger>;
  /** What to bid per operation now, in stroops, never above the cap. */
  feePerOperation(capStroops: bigint): Promise<bigint>;
  submit(envelopeXdr: string): Promise<SubmitOutcome>;
  lookup(hash: string): Promise<LookupOutcome>;
};

/**
 * A transaction can never apply once a ledger has closed past its window: ledger bounds are
 * exclusive of maxLedger, and close times never go backwards. `latest` must come from a path that
 * has ingested every ledger up to it, which is what a `not_found` lookup carries.
 */
export function windowClosed(
  window: { maxTime: bigint; maxLedger: number; firstLedger: number },
  latest: ChainLedger,
): boolean {
  // A path that no longer holds the ledger the transaction was built in cannot prove its absence.
  if (latest.oldest !== undefined && latest.oldest > window.firstLedger) return false;
  return latest.sequence >= window.maxLedger || BigInt(latest.closeTime) > window.maxTime;
}
