import { StrKey } from '@stellar/stellar-sdk';
import type { ResultCodes, TransactionOutcome } from './codes.ts';
import { accountRef, type ParsedEnvelope } from './envelope.ts';
import { assetOf } from './operations.ts';
import { type PaymentRecord, storedMemo, type TransactionRecord, toid } from './records.ts';
import { toBase64 } from './xdr.ts';

/** Turns an applied envelope into the records Horizon and RPC serve. */

export type ClosedFacts = {
  ledger: number;
  applicationOrder: number;
  closeTime: number;
  outcome: TransactionOutcome;
  successful: boolean;
  resultCodes: ResultCodes;
  resultXdr: string;
  resultMetaXdr: string;
  feeMetaXdr: string;
};

export function transactionRecord(envelope: ParsedEnvelope, facts: ClosedFacts): TransactionRecord {
  const { inner, feeBump } = envelope;
  return {
    hash: envelope.hash,
    innerHash: feeBump ? inner.hash : undefined,
    ledger: facts.ledger,
    applicationOrder: facts.applicationOrder,
    closeTime: facts.closeTime,
    successful: facts.successful,
    resultCodes: facts.resultCodes,
    sourceAccount: inner.source.accountId,
    sourceAccountMuxed: inner.source.muxed?.address,
    sourceSequence: inner.sequence,
    feeAccount: (feeBump?.feeSource ?? inner.source).accountId,
    feeChargedStroops: facts.outcome.feeChargedStroops,
    maxFeeStroops: feeBump?.feeStroops ?? inner.feeStroops,
    innerMaxFeeStroops: inner.feeStroops,
    operationCount: inner.operations.length,
    memo: storedMemo(inner.memo),
    signatures: (feeBump?.signatures ?? inner.signatures).map((signature) =>
      toBase64(signature.signature.value),
    ),
    innerSignatures: inner.signatures.map((signature) => toBase64(signature.signature.value)),
    timeBounds: inner.timeBounds,
    ledgerBounds: inner.ledgerBounds,
    envelopeXdr: envelope.envelopeXdr,
    resultXdr: facts.resultXdr,
    resultMetaXdr: facts.resultMetaXdr,
    feeMetaXdr: facts.feeMetaXdr,
  };
}

export function paymentRecords(envelope: ParsedEnvelope, record: TransactionRecord): PaymentRecord[] {
  const { inner } = envelope;
  return inner.operations.flatMap((operation, index): PaymentRecord[] => {
    const source = operation.source ?? inner.source;
    const common = {
      id: toid(record.ledger, record.applicationOrder, index + 1),
      transactionHash: record.hash,
      ledger: record.ledger,
      closeTime: record.closeTime,
      transactionSuccessful: record.successful,
      sourceAccount: source.accountId,
      sourceAccountMuxed: source.muxed?.address,
    };
    const { body } = operation;
    if (body.type === 'createAccount') {
      return [
        {
          ...common,
          body: {
            type: 'create_account',
            funder: source.accountId,
            account: StrKey.encodeEd25519PublicKey(body.createAccountOp.destination.ed25519.value),
            startingBalanceStroops: body.createAccountOp.startingBalance,
          },
        },
      ];
    }
    if (body.type !== 'payment') return [];
    const asset = assetOf(body.paymentOp.asset);
    if (asset === undefined) return [];
    const destination = accountRef(body.paymentOp.destination);
    return [
      {
        ...common,
        body: {
          type: 'payment',
          from: source.accountId,
          to: destination.accountId,
          toMuxed: destination.muxed,
          asset,
          amountStroops: body.paymentOp.amount,
        },
      },
    ];
  });
}
