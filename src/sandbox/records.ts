import type { ResultCodes } from './codes.ts';
import type { Memo } from './envelope.ts';
import type { Asset } from './operations.ts';

/** What the network remembers about closed ledgers and applied transactions (persisted). */

export type LedgerRecord = {
  sequence: number;
  hash: string;
  previousHash: string;
  closeTime: number;
  transactionHashes: string[];
  successfulTransactionCount: number;
  failedTransactionCount: number;
  operationCount: number;
  txSetOperationCount: number;
  totalCoinsStroops: bigint;
  feePoolStroops: bigint;
  baseFeeStroops: bigint;
  baseReserveStroops: bigint;
  maxTxSetSize: number;
  headerXdr: string;
};

export type StoredMemo =
  | { type: 'none' }
  | { type: 'text'; bytesBase64: string }
  | { type: 'id'; id: bigint }
  | { type: 'hash' | 'return'; hashBase64: string };

export function storedMemo(memo: Memo): StoredMemo {
  switch (memo.type) {
    case 'none':
      return memo;
    case 'text':
      return { type: 'text', bytesBase64: Buffer.from(memo.bytes).toString('base64') };
    case 'id':
      return memo;
    case 'hash':
    case 'return':
      return { type: memo.type, hashBase64: Buffer.from(memo.hash).toString('base64') };
  }
}

export type TransactionRecord = {
  hash: string;
  innerHash: string | undefined;
  ledger: number;
  applicationOrder: number;
  closeTime: number;
  successful: boolean;
  resultCodes: ResultCodes;
  sourceAccount: string;
  sourceAccountMuxed: string | undefined;
  sourceSequence: bigint;
  feeAccount: string;
  feeChargedStroops: bigint;
  maxFeeStroops: bigint;
  innerMaxFeeStroops: bigint;
  operationCount: number;
  memo: StoredMemo;
  signatures: string[];
  innerSignatures: string[];
  timeBounds: { minTime: bigint; maxTime: bigint } | undefined;
  ledgerBounds: { minLedger: number; maxLedger: number } | undefined;
  envelopeXdr: string;
  resultXdr: string;
  resultMetaXdr: string;
  feeMetaXdr: string;
};

/**
 * A path payment: `asset` and `amountStroops` are what the destination received, `source*` what
 * the source sent. The amount the network computed (strict receive: sent, strict send: received)
 * is zero when the transaction failed, as Horizon shows it.
 */
export type PathPaymentBody = {
  type: 'path_payment_strict_receive' | 'path_payment_strict_send';
  from: string;
  to: string;
  toMuxed: { address: string; id: bigint } | undefined;
  asset: Asset;
  amountStroops: bigint;
  sourceAsset: Asset;
  sourceAmountStroops: bigint;
  path: Asset[];
  /** `sendMax` of a strict receive, `destMin` of a strict send. */
  boundStroops: bigint;
};

/** A payment, path payment or create-account operation, as Horizon's payments endpoints list them. */
export type PaymentRecord = {
  /** The operation's TOID: ledger, application order and operation index packed in 64 bits. */
  id: bigint;
  transactionHash: string;
  ledger: number;
  closeTime: number;
  transactionSuccessful: boolean;
  sourceAccount: string;
  sourceAccountMuxed: string | undefined;
  body:
    | { type: 'create_account'; funder: string; account: string; startingBalanceStroops: bigint }
    | {
        type: 'payment';
        from: string;
        to: string;
        toMuxed: { address: string; id: bigint } | undefined;
        asset: Asset;
        amountStroops: bigint;
      }
    | PathPaymentBody;
};

/** Horizon's TOID layout: 32 bits of ledger, 20 of transaction order, 12 of operation index. */
export function toid(ledger: number, transactionOrder: number, operationIndex: number): bigint {
  return (BigInt(ledger) << 32n) | (BigInt(transactionOrder) << 12n) | BigInt(operationIndex);
}
