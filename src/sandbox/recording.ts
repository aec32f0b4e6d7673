import { StrKey } from '@stellar/stellar-sdk';
import type { OperationOutcome, ResultCodes, TransactionOutcome } from './codes.ts';
import { type AccountRef, accountRef, type ParsedEnvelope } from './envelope.ts';
import { type Asset, assetOf } from './operations.ts';
import {
  type PathPaymentBody,
  type PaymentRecord,
  storedMemo,
  type TransactionRecord,
  toid,
} from './records.ts';
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

export function paymentRecords(
  envelope: ParsedEnvelope,
  record: TransactionRecord,
  outcome: TransactionOutcome,
): PaymentRecord[] {
  const { inner } = envelope;
  const outcomes = outcome.inner?.operations ?? outcome.operations ?? [];
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
    const path = pathPaymentBody(body, source, outcomes[index]);
    if (path !== undefined) return [{ ...common, body: path }];
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

/** The two amounts of a path payment: the one in the operation, and the one the network computed. */
function pathPaymentBody(
  body: ParsedEnvelope['inner']['operations'][number]['body'],
  source: AccountRef,
  outcome: OperationOutcome | undefined,
): PathPaymentBody | undefined {
  const delivery =
    outcome?.kind === 'path_payment_strict_receive' || outcome?.kind === 'path_payment_strict_send'
      ? outcome.delivery
      : undefined;
  const op =
    body.type === 'pathPaymentStrictReceive'
      ? body.pathPaymentStrictReceiveOp
      : body.type === 'pathPaymentStrictSend'
        ? body.pathPaymentStrictSendOp
        : undefined;
  if (op === undefined) return undefined;
  const [sourceAsset, asset] = [assetOf(op.sendAsset), assetOf(op.destAsset)];
  const path = op.path.map((hop) => assetOf(hop));
  if (sourceAsset === undefined || asset === undefined) return undefined;
  if (!path.every((hop): hop is Asset => hop !== undefined)) return undefined;
  const destination = accountRef(op.destination);
  const common = { from: source.accountId, to: destination.accountId, toMuxed: destination.muxed, path };
  return 'destAmount' in op
    ? {
        ...common,
        type: 'path_payment_strict_receive',
        asset,
        amountStroops: op.destAmount,
        sourceAsset,
        sourceAmountStroops: delivery?.sentStroops ?? 0n,
        boundStroops: op.sendMax,
      }
    : {
        ...common,
        type: 'path_payment_strict_send',
        asset,
        amountStroops: delivery?.receivedStroops ?? 0n,
        sourceAsset,
        sourceAmountStroops: op.sendAmount,
        boundStroops: op.destMin,
      };
}
