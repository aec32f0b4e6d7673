import { assert } from '../platform/assert.ts';
import type { OperationOutcome, TransactionOutcome } from './codes.ts';
import { feePayer, type ParsedEnvelope } from './envelope.ts';
import { applyOperation } from './operations.ts';
import { type EntryChange, type EntryReader, Overlay } from './state.ts';

/**
 * Applying one transaction at ledger close. The fee and the sequence number are consumed even when
 * an operation fails; the operations themselves commit all together or not at all.
 */

export type FeeCharge = { changes: EntryChange[]; writes: Overlay };

export function chargeFee(state: EntryReader, envelope: ParsedEnvelope, feeStroops: bigint, ledger: number) {
  const overlay = new Overlay(state);
  const payer = overlay.account(feePayer(envelope));
  assert(payer !== undefined, 'fee payer vanished between selection and apply');
  overlay.putAccount({
    ...payer,
    balanceStroops: payer.balanceStroops - feeStroops,
    lastModifiedLedger: ledger,
  });
  return { changes: overlay.changes(), writes: overlay };
}

export type Applied = {
  outcome: TransactionOutcome;
  sequenceChanges: EntryChange[];
  operationChanges: EntryChange[][];
  /** The entries to commit: only the sequence bump when an operation failed. */
  writes: Overlay;
};

export function applyTransaction(
  state: EntryReader,
  envelope: ParsedEnvelope,
  feeChargedStroops: bigint,
  ledger: number,
): Applied {
  const { inner } = envelope;
  const sequenceBump = new Overlay(state);
  const source = sequenceBump.account(inner.source.accountId);
  assert(source !== undefined, 'transaction source vanished between selection and apply');
  sequenceBump.putAccount({ ...source, sequence: inner.sequence, lastModifiedLedger: ledger });
  const sequenceChanges = sequenceBump.changes();
  const operations = new Overlay(sequenceBump);
  const outcomes: OperationOutcome[] = [];
  const operationChanges: EntryChange[][] = [];
  for (const operation of inner.operations) {
    const step = new Overlay(operations);
    const sourceId = operation.source?.accountId ?? inner.source.accountId;
    const outcome = applyOperation(operation.body, { overlay: step, sourceId, ledger });
    outcomes.push(outcome);
    operationChanges.push(step.changes());
    if (outcome.code === 'op_success') step.mergeInto(operations);
  }
  const successful = outcomes.every((outcome) => outcome.code === 'op_success');
  if (successful) operations.mergeInto(sequenceBump);
  return {
    outcome: outcomeOf(envelope, successful, outcomes, feeChargedStroops),
    sequenceChanges,
    operationChanges: successful ? operationChanges : [],
    writes: sequenceBump,
  };
}

function outcomeOf(
  envelope: ParsedEnvelope,
  successful: boolean,
  operations: OperationOutcome[],
  feeChargedStroops: bigint,
): TransactionOutcome {
  const innerCode = successful ? 'tx_success' : 'tx_failed';
  if (envelope.feeBump === undefined) return { code: innerCode, feeChargedStroops, operations };
  return {
    code: successful ? 'tx_fee_bump_inner_success' : 'tx_fee_bump_inner_failed',
    feeChargedStroops,
    inner: { hash: envelope.inner.hash, code: innerCode, operations },
  };
}
