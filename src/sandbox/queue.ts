import { feeBid, feePayer, type ParsedEnvelope } from './envelope.ts';
import { minimumBalance } from './operations.ts';
import type { Account } from './state.ts';
import { boundsCode } from './validation.ts';

/** The transaction queue's choice of what goes into a ledger: surge pricing by fee bid per operation. */

export type Pending = { envelope: ParsedEnvelope; receivedLedger: number; arrival: number };

export type SelectionContext = {
  account(accountId: string): Account | undefined;
  closeTime: bigint;
  ledger: number;
  capacityOps: number;
  baseFeeStroops: bigint;
};

export type Selection = {
  selected: Pending[];
  /** Transactions that can never apply any more (window passed, sequence consumed). */
  invalid: Pending[];
  /** The base fee every included transaction pays: the lowest included bid when the ledger was full. */
  baseFeeStroops: bigint;
};

/** Higher fee per operation first; equal bids in arrival order. Compared exactly, in bigints. */
function byBid(left: Pending, right: Pending): number {
  const a = feeBid(left.envelope);
  const b = feeBid(right.envelope);
  const difference = b.feeStroops * a.operations - a.feeStroops * b.operations;
  if (difference !== 0n) return difference > 0n ? 1 : -1;
  return left.arrival - right.arrival;
}

function isInvalid(pending: Pending, context: SelectionContext): boolean {
  const { inner } = pending.envelope;
  const source = context.account(inner.source.accountId);
  if (source === undefined || inner.sequence <= source.sequence) return true;
  return boundsCode(inner, context.closeTime, context.ledger) !== undefined;
}

function operationsOf(pending: Pending): number {
  return pending.envelope.inner.operations.length + (pending.envelope.feeBump ? 1 : 0);
}

export function chargedFee(envelope: ParsedEnvelope, baseFeeStroops: bigint): bigint {
  const bid = feeBid(envelope);
  const atBase = baseFeeStroops * bid.operations;
  return bid.feeStroops < atBase ? bid.feeStroops : atBase;
}

export function selectTransactions(queue: Pending[], context: SelectionContext): Selection {
  const invalid = queue.filter((pending) => isInvalid(pending, context));
  const candidates = queue.filter((pending) => !invalid.includes(pending)).sort(byBid);
  const selected: Pending[] = [];
  const expected = new Map<string, bigint>();
  const committedFees = new Map<string, bigint>();
  let operationsUsed = 0;
  let surged = false;
  // Each pass can unlock the next sequence number of an account, so repeat until nothing moves;
  // the number of passes is bounded by the number of candidates.
  for (let pass = 0; pass <= candidates.length; pass += 1) {
    let progressed = false;
    for (const pending of candidates) {
      if (selected.includes(pending)) continue;
      const { inner } = pending.envelope;
      const source = context.account(inner.source.accountId);
      const next = expected.get(inner.source.accountId) ?? (source ? source.sequence + 1n : -1n);
      if (inner.sequence !== next) continue;
      if (operationsUsed + operationsOf(pending) > context.capacityOps) {
        surged = true;
        continue;
      }
      const payerId = feePayer(pending.envelope);
      const payer = context.account(payerId);
      const fee = feeBid(pending.envelope).feeStroops + (committedFees.get(payerId) ?? 0n);
      if (payer === undefined || payer.balanceStroops - minimumBalance(payer) < fee) continue;
      committedFees.set(payerId, fee);
      expected.set(inner.source.accountId, inner.sequence + 1n);
      operationsUsed += operationsOf(pending);
      selected.push(pending);
      progressed = true;
    }
    if (!progressed) break;
  }
  return {
    selected,
    invalid,
    baseFeeStroops: surged ? lowestBid(selected, context) : context.baseFeeStroops,
  };
}

function lowestBid(selected: Pending[], context: SelectionContext): bigint {
  let lowest: bigint | undefined;
  for (const pending of selected) {
    const bid = feeBid(pending.envelope);
    const perOperation = (bid.feeStroops + bid.operations - 1n) / bid.operations;
    if (lowest === undefined || perOperation < lowest) lowest = perOperation;
  }
  return lowest !== undefined && lowest > context.baseFeeStroops ? lowest : context.baseFeeStroops;
}
