import { Keypair, type xdr } from '@stellar/stellar-sdk';
import type { OperationOutcome, TransactionCode, TransactionOutcome } from './codes.ts';
import type { InnerTransaction, ParsedEnvelope } from './envelope.ts';
import { operationsPerTransactionMax } from './limits.ts';
import { checkOperation, minimumBalance } from './operations.ts';
import type { Account } from './state.ts';

/**
 * Stellar Core's admission checks, in Core's order. A transaction refused here is never queued:
 * no fee is charged and no sequence number is consumed.
 */

export type AdmissionContext = {
  account(accountId: string): Account | undefined;
  /** The sequence number the next queued transaction from this account must carry. */
  nextSequence(account: Account): bigint;
  /** Fees already promised by this account's queued transactions. */
  pendingFeesStroops(accountId: string): bigint;
  closeTime: bigint;
  ledger: number;
  baseFeeStroops: bigint;
};

/** `checked`: a signer's verdict, computed once per transaction as Stellar Core does (ed25519 is slow). */
type Signatures = {
  list: xdr.DecoratedSignature[];
  hash: Uint8Array;
  used: Set<number>;
  checked?: Map<string, boolean>;
};

function signedBy(signatures: Signatures, accountId: string): boolean {
  signatures.checked ??= new Map();
  const known = signatures.checked.get(accountId);
  if (known !== undefined) return known;
  const verdict = verifySigner(signatures, accountId);
  signatures.checked.set(accountId, verdict);
  return verdict;
}

function verifySigner(signatures: Signatures, accountId: string): boolean {
  const keypair = Keypair.fromPublicKey(accountId);
  const hint = keypair.signatureHint();
  const index = signatures.list.findIndex(
    (signature) =>
      Buffer.from(signature.hint.value).equals(Buffer.from(hint)) &&
      keypair.verify(signatures.hash, signature.signature.value),
  );
  if (index < 0) return false;
  signatures.used.add(index);
  return true;
}

function rejected(code: TransactionCode, operations?: OperationOutcome[]): TransactionOutcome {
  return { code, feeChargedStroops: 0n, ...(operations ? { operations } : {}) };
}

export function boundsCode(
  inner: InnerTransaction,
  closeTime: bigint,
  ledger: number,
): TransactionCode | undefined {
  const { timeBounds, ledgerBounds } = inner;
  if (timeBounds && timeBounds.minTime > closeTime) return 'tx_too_early';
  if (timeBounds && timeBounds.maxTime !== 0n && timeBounds.maxTime < closeTime) return 'tx_too_late';
  if (ledgerBounds && ledger < ledgerBounds.minLedger) return 'tx_too_early';
  if (ledgerBounds && ledgerBounds.maxLedger !== 0 && ledger >= ledgerBounds.maxLedger) return 'tx_too_late';
  return undefined;
}

function operationsOutcome(inner: InnerTransaction, signatures: Signatures, context: AdmissionContext) {
  const outcomes = inner.operations.map((operation): OperationOutcome => {
    const sourceId = operation.source?.accountId ?? inner.source.accountId;
    if (context.account(sourceId) === undefined) return { kind: 'outer', code: 'op_no_source_account' };
    if (!signedBy(signatures, sourceId)) return { kind: 'outer', code: 'op_bad_auth' };
    return checkOperation(operation.body, sourceId) ?? successOf(operation.body);
  });
  return outcomes.every((outcome) => outcome.code === 'op_success') ? undefined : outcomes;
}

function successOf(body: xdr.OperationBody): OperationOutcome {
  if (body.type === 'createAccount') return { kind: 'create_account', code: 'op_success' };
  if (body.type === 'payment') return { kind: 'payment', code: 'op_success' };
  if (body.type === 'pathPaymentStrictReceive')
    return { kind: 'path_payment_strict_receive', code: 'op_success' };
  if (body.type === 'pathPaymentStrictSend') return { kind: 'path_payment_strict_send', code: 'op_success' };
  return { kind: 'change_trust', code: 'op_success' };
}

function canPay(account: Account, feeStroops: bigint, context: AdmissionContext): boolean {
  const pending = context.pendingFeesStroops(account.id);
  return account.balanceStroops - minimumBalance(account) >= feeStroops + pending;
}

/** Checks the inner transaction; `paysOwnFee` is false inside a fee bump. */
function checkInner(inner: InnerTransaction, context: AdmissionContext, paysOwnFee: boolean) {
  const operationCount = inner.operations.length;
  if (operationCount === 0) return rejected('tx_missing_operation');
  if (operationCount > operationsPerTransactionMax) return rejected('tx_malformed');
  if (inner.usesUnsupportedPreconditions) return rejected('tx_not_supported');
  const bounds = boundsCode(inner, context.closeTime, context.ledger);
  if (bounds) return rejected(bounds);
  if (paysOwnFee && inner.feeStroops < context.baseFeeStroops * BigInt(operationCount)) {
    return rejected('tx_insufficient_fee');
  }
  const source = context.account(inner.source.accountId);
  if (source === undefined) return rejected('tx_no_source_account');
  if (inner.sequence !== context.nextSequence(source)) return rejected('tx_bad_seq');
  const signatures: Signatures = { list: inner.signatures, hash: inner.hashBytes, used: new Set() };
  if (!signedBy(signatures, source.id)) return rejected('tx_bad_auth');
  if (paysOwnFee && !canPay(source, inner.feeStroops, context)) return rejected('tx_insufficient_balance');
  const operations = operationsOutcome(inner, signatures, context);
  if (operations) return rejected('tx_failed', operations);
  if (signatures.used.size < signatures.list.length) return rejected('tx_bad_auth_extra');
  return undefined;
}

function checkFeeBump(envelope: ParsedEnvelope, context: AdmissionContext): TransactionOutcome | undefined {
  const { feeBump, inner } = envelope;
  if (feeBump === undefined) return checkInner(inner, context, true);
  const operations = BigInt(inner.operations.length);
  const outerBidTooLow = feeBump.feeStroops < context.baseFeeStroops * (operations + 1n);
  const belowInnerRate = feeBump.feeStroops * operations < inner.feeStroops * (operations + 1n);
  if (outerBidTooLow || belowInnerRate) return rejected('tx_insufficient_fee');
  const payer = context.account(feeBump.feeSource.accountId);
  if (payer === undefined) return rejected('tx_no_source_account');
  const signatures: Signatures = { list: feeBump.signatures, hash: feeBump.hashBytes, used: new Set() };
  if (!signedBy(signatures, payer.id)) return rejected('tx_bad_auth');
  if (!canPay(payer, feeBump.feeStroops, context)) return rejected('tx_insufficient_balance');
  const innerOutcome = checkInner(inner, context, false);
  if (innerOutcome) {
    return {
      code: 'tx_fee_bump_inner_failed',
      feeChargedStroops: 0n,
      inner: { hash: inner.hash, code: innerOutcome.code, ...withOperations(innerOutcome) },
    };
  }
  if (signatures.used.size < signatures.list.length) return rejected('tx_bad_auth_extra');
  return undefined;
}

function withOperations(outcome: TransactionOutcome): { operations?: OperationOutcome[] } {
  return outcome.operations ? { operations: outcome.operations } : {};
}

/** Returns the refusal, or undefined when the envelope may enter the queue. */
export function checkAdmission(
  envelope: ParsedEnvelope,
  context: AdmissionContext,
): TransactionOutcome | undefined {
  return checkFeeBump(envelope, context);
}
