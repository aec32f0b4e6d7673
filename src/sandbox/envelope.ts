import {
  FeeBumpTransaction,
  StrKey,
  type Transaction,
  TransactionBuilder,
  type xdr,
} from '@stellar/stellar-sdk';
import { toBase64, toHex } from './xdr.ts';

/** A decoded envelope reduced to what validation, apply and Horizon need, with bigint amounts. */

export type Memo =
  | { type: 'none' }
  | { type: 'text'; bytes: Uint8Array }
  | { type: 'id'; id: bigint }
  | { type: 'hash' | 'return'; hash: Uint8Array };

export type AccountRef = { accountId: string; muxed?: { address: string; id: bigint } };

export type ParsedOperation = { source: AccountRef | undefined; body: xdr.OperationBody };

export type InnerTransaction = {
  hash: string;
  hashBytes: Uint8Array;
  source: AccountRef;
  sequence: bigint;
  feeStroops: bigint;
  operations: ParsedOperation[];
  memo: Memo;
  timeBounds: { minTime: bigint; maxTime: bigint } | undefined;
  ledgerBounds: { minLedger: number; maxLedger: number } | undefined;
  /** minSeqNum, minSeqAge, minSeqLedgerGap and extra signers are not implemented by the sandbox. */
  usesUnsupportedPreconditions: boolean;
  signatures: xdr.DecoratedSignature[];
};

export type FeeBump = {
  hash: string;
  hashBytes: Uint8Array;
  feeSource: AccountRef;
  feeStroops: bigint;
  signatures: xdr.DecoratedSignature[];
};

export type ParsedEnvelope = {
  /** The hash the network knows the transaction by: the outer hash of a fee bump. */
  hash: string;
  envelopeXdr: string;
  inner: InnerTransaction;
  feeBump: FeeBump | undefined;
};

export function accountRef(account: xdr.MuxedAccount): AccountRef {
  if (account.type === 'keyTypeEd25519') {
    return { accountId: StrKey.encodeEd25519PublicKey(account.ed25519.value) };
  }
  const { ed25519, id } = account.med25519;
  const payload = new Uint8Array(40);
  payload.set(ed25519.value, 0);
  new DataView(payload.buffer).setBigUint64(32, id);
  return {
    accountId: StrKey.encodeEd25519PublicKey(ed25519.value),
    muxed: { address: StrKey.encodeMed25519PublicKey(payload), id },
  };
}

function memoOf(memo: xdr.Memo): Memo {
  switch (memo.type) {
    case 'memoNone':
      return { type: 'none' };
    case 'memoText':
      return { type: 'text', bytes: memo.text.bytes };
    case 'memoId':
      return { type: 'id', id: memo.id };
    case 'memoHash':
      return { type: 'hash', hash: memo.hash.value };
    case 'memoReturn':
      return { type: 'return', hash: memo.retHash.value };
  }
}

function innerOf(tx: Transaction, source: AccountRef): InnerTransaction {
  const hashBytes = tx.hash();
  const timeBounds = tx.timeBounds;
  const age = tx.minAccountSequenceAge;
  return {
    hash: toHex(hashBytes),
    hashBytes,
    source,
    sequence: BigInt(tx.sequence),
    feeStroops: BigInt(tx.fee),
    operations: tx.tx.operations.map((operation) => ({
      source: operation.sourceAccount ? accountRef(operation.sourceAccount) : undefined,
      body: operation.body,
    })),
    memo: memoOf(tx.tx.memo),
    timeBounds: timeBounds
      ? { minTime: BigInt(timeBounds.minTime), maxTime: BigInt(timeBounds.maxTime) }
      : undefined,
    ledgerBounds: tx.ledgerBounds,
    usesUnsupportedPreconditions:
      tx.minAccountSequence !== undefined ||
      (age !== undefined && age > 0n) ||
      (tx.minAccountSequenceLedgerGap ?? 0) > 0 ||
      (tx.extraSigners ?? []).length > 0,
    signatures: tx.signatures,
  };
}

function transactionSource(tx: Transaction): AccountRef {
  const { tx: body } = tx;
  if ('sourceAccount' in body) return accountRef(body.sourceAccount);
  return { accountId: StrKey.encodeEd25519PublicKey(body.sourceAccountEd25519.value) };
}

/** Decodes an envelope with the SDK. Returns undefined for bytes that are not a valid envelope. */
export function parseEnvelope(envelopeXdr: string, networkPassphrase: string): ParsedEnvelope | undefined {
  let decoded: Transaction | FeeBumpTransaction;
  try {
    decoded = TransactionBuilder.fromXDR(envelopeXdr, networkPassphrase);
  } catch {
    return undefined;
  }
  const canonicalXdr = toBase64(decoded.toEnvelope().toXdr());
  if (decoded instanceof FeeBumpTransaction) {
    const innerTx = decoded.innerTransaction;
    const hashBytes = decoded.hash();
    return {
      hash: toHex(hashBytes),
      envelopeXdr: canonicalXdr,
      inner: innerOf(innerTx, transactionSource(innerTx)),
      feeBump: {
        hash: toHex(hashBytes),
        hashBytes,
        feeSource: accountRef(decoded.tx.feeSource),
        feeStroops: BigInt(decoded.fee),
        signatures: decoded.signatures,
      },
    };
  }
  const inner = innerOf(decoded, transactionSource(decoded));
  return { hash: inner.hash, envelopeXdr: canonicalXdr, inner, feeBump: undefined };
}

export function operationCount(envelope: ParsedEnvelope): number {
  return envelope.inner.operations.length;
}

/** The fee bid the queue orders by: fee per operation (a fee bump counts as one more operation). */
export function feeBid(envelope: ParsedEnvelope): { feeStroops: bigint; operations: bigint } {
  const operations = BigInt(operationCount(envelope));
  return envelope.feeBump
    ? { feeStroops: envelope.feeBump.feeStroops, operations: operations + 1n }
    : { feeStroops: envelope.inner.feeStroops, operations };
}

export function feePayer(envelope: ParsedEnvelope): string {
  return (envelope.feeBump?.feeSource ?? envelope.inner.source).accountId;
}
