import { createHash } from 'node:crypto';
import { StrKey, xdr } from '@stellar/stellar-sdk';
import { assert } from '../platform/assert.ts';
import {
  changeTrustCodes,
  createAccountCodes,
  type OperationOutcome,
  operationOuterCodes,
  type PathDelivery,
  pathPaymentStrictReceiveCodes,
  pathPaymentStrictSendCodes,
  paymentCodes,
  type TransactionOutcome,
  transactionCodes,
} from './codes.ts';
import type { Asset } from './operations.ts';
import type { CreditAsset, Entry, EntryChange } from './state.ts';

/** Builders from sandbox state to the XDR wire objects of the SDK; nothing here touches state. */

type Wire<T extends { toXdrObject(): unknown }> = ReturnType<T['toXdrObject']>;
export type LedgerEntryChangeWire = Wire<xdr.LedgerEntryChange>;
export type OperationResultWire = Wire<xdr.OperationResult>;
export type TransactionMetaWire = Wire<xdr.TransactionMeta>;
export type LedgerHeaderWire = Wire<xdr.LedgerHeader>;

export const zeroHash = new Uint8Array(32);

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

function publicKeyWire(accountId: string): { type: 0; ed25519: Uint8Array } {
  return { type: 0, ed25519: StrKey.decodeEd25519PublicKey(accountId) };
}

function assetCodeBytes(code: string, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes.set(new TextEncoder().encode(code));
  return bytes;
}

/** Credit asset codes of one to four characters are alphanum4, five to twelve alphanum12. */
const alphanum4LengthMax = 4;

function trustLineAssetWire(asset: CreditAsset) {
  const issuer = publicKeyWire(asset.issuer);
  return asset.code.length <= alphanum4LengthMax
    ? { type: 1 as const, alphaNum4: { assetCode: assetCodeBytes(asset.code, 4), issuer } }
    : { type: 2 as const, alphaNum12: { assetCode: assetCodeBytes(asset.code, 12), issuer } };
}

/** The master key has weight 1 and every threshold is 0, as for any account without setOptions. */
const defaultThresholds = new Uint8Array([1, 0, 0, 0]);
/** Trustline flag AUTHORIZED_FLAG. */
const authorizedFlag = 1;

function ledgerEntryWire(entry: Entry) {
  if (entry.type === 'account') {
    const { account } = entry;
    return {
      lastModifiedLedgerSeq: account.lastModifiedLedger,
      data: {
        type: 0 as const,
        account: {
          accountId: publicKeyWire(account.id),
          balance: account.balanceStroops,
          seqNum: account.sequence,
          numSubEntries: account.subentryCount,
          inflationDest: null,
          flags: 0,
          homeDomain: new xdr.XdrString(''),
          thresholds: defaultThresholds,
          signers: [],
          ext: { v: 0 as const },
        },
      },
      ext: { v: 0 as const },
    };
  }
  const { trustline } = entry;
  return {
    lastModifiedLedgerSeq: trustline.lastModifiedLedger,
    data: {
      type: 1 as const,
      trustLine: {
        accountId: publicKeyWire(trustline.accountId),
        asset: trustLineAssetWire(trustline.asset),
        balance: trustline.balanceStroops,
        limit: trustline.limitStroops,
        flags: trustline.authorized ? authorizedFlag : 0,
        ext: { v: 0 as const },
      },
    },
    ext: { v: 0 as const },
  };
}

function ledgerKeyWire(entry: Entry) {
  return entry.type === 'account'
    ? { type: 0 as const, account: { accountId: publicKeyWire(entry.account.id) } }
    : {
        type: 1 as const,
        trustLine: {
          accountId: publicKeyWire(entry.trustline.accountId),
          asset: trustLineAssetWire(entry.trustline.asset),
        },
      };
}

/** Meta lists an entry's prior state before each update or removal, as Stellar Core does. */
export function entryChangesWire(changes: EntryChange[]): LedgerEntryChangeWire[] {
  return changes.flatMap(({ before, after }): LedgerEntryChangeWire[] => {
    if (before === undefined)
      return after === undefined ? [] : [{ type: 0, created: ledgerEntryWire(after) }];
    const state: LedgerEntryChangeWire = { type: 3, state: ledgerEntryWire(before) };
    if (after === undefined) return [state, { type: 2, removed: ledgerKeyWire(before) }];
    return [state, { type: 1, updated: ledgerEntryWire(after) }];
  });
}

/** An entry's `LedgerEntryData` as RPC `getLedgerEntries` returns it. */
export function ledgerEntryDataXdr(entry: Entry): { xdr: string; lastModifiedLedgerSeq: number } {
  const wire = ledgerEntryWire(entry);
  return {
    xdr: xdr.LedgerEntryData.fromXdrObject(wire.data).toXdr('base64'),
    lastModifiedLedgerSeq: wire.lastModifiedLedgerSeq,
  };
}

export function encodeEntryChanges(changes: EntryChange[]): string {
  const values = entryChangesWire(changes).map((wire) => xdr.LedgerEntryChange.fromXdrObject(wire));
  return xdr.encodeArray(xdr.LedgerEntryChange, values, 'base64');
}

function assetWire(asset: Asset) {
  return asset.type === 'native' ? { type: 0 as const } : trustLineAssetWire(asset);
}

/** No order book, so no offers were crossed: `last` is what the destination received. */
function pathSuccessWire(delivery: PathDelivery | undefined) {
  assert(delivery !== undefined, 'a successful path payment without its delivery');
  return {
    code: 0 as const,
    success: {
      offers: [],
      last: {
        destination: publicKeyWire(delivery.destination),
        asset: assetWire(delivery.destAsset),
        amount: delivery.receivedStroops,
      },
    },
  };
}

function operationResultWire(outcome: OperationOutcome): OperationResultWire {
  switch (outcome.kind) {
    case 'outer':
      return { code: operationOuterCodes[outcome.code] };
    case 'create_account':
      return { code: 0, tr: { type: 0, createAccountResult: { code: createAccountCodes[outcome.code] } } };
    case 'payment':
      return { code: 0, tr: { type: 1, paymentResult: { code: paymentCodes[outcome.code] } } };
    case 'change_trust':
      return { code: 0, tr: { type: 6, changeTrustResult: { code: changeTrustCodes[outcome.code] } } };
    case 'path_payment_strict_receive': {
      const code = pathPaymentStrictReceiveCodes[outcome.code];
      const result = code === 0 ? pathSuccessWire(outcome.delivery) : { code };
      return { code: 0, tr: { type: 2, pathPaymentStrictReceiveResult: result } };
    }
    case 'path_payment_strict_send': {
      const code = pathPaymentStrictSendCodes[outcome.code];
      const result = code === 0 ? pathSuccessWire(outcome.delivery) : { code };
      return { code: 0, tr: { type: 13, pathPaymentStrictSendResult: result } };
    }
  }
}

type ResultBody = Wire<xdr.TransactionResult>['result'];
type InnerResultBody = Wire<xdr.InnerTransactionResult>['result'];
type FeeBumpCode = 'tx_fee_bump_inner_success' | 'tx_fee_bump_inner_failed';
type InnerCode = Exclude<TransactionOutcome['code'], FeeBumpCode>;

function isFeeBumpCode(code: TransactionOutcome['code']): code is FeeBumpCode {
  return code === 'tx_fee_bump_inner_success' || code === 'tx_fee_bump_inner_failed';
}

function innerResultBody(code: InnerCode, operations: OperationOutcome[] | undefined): InnerResultBody {
  if (code === 'tx_success' || code === 'tx_failed') {
    return { code: transactionCodes[code], results: (operations ?? []).map(operationResultWire) };
  }
  return { code: transactionCodes[code] };
}

function resultBody(outcome: TransactionOutcome): ResultBody {
  const { code, inner } = outcome;
  if (isFeeBumpCode(code)) {
    assert(inner !== undefined && !isFeeBumpCode(inner.code), 'a fee-bump result carries its inner result');
    return {
      code: transactionCodes[code],
      innerResultPair: {
        transactionHash: Buffer.from(inner.hash, 'hex'),
        result: { feeCharged: 0n, result: innerResultBody(inner.code, inner.operations), ext: { v: 0 } },
      },
    };
  }
  return innerResultBody(code, outcome.operations);
}

export function transactionResult(outcome: TransactionOutcome): xdr.TransactionResult {
  return xdr.TransactionResult.fromXdrObject({
    feeCharged: outcome.feeChargedStroops,
    result: resultBody(outcome),
    ext: { v: 0 },
  });
}

export function transactionMeta(
  sequenceChanges: EntryChange[],
  operationChanges: EntryChange[][],
): xdr.TransactionMeta {
  return xdr.TransactionMeta.fromXdrObject({
    v: 2,
    v2: {
      txChangesBefore: entryChangesWire(sequenceChanges),
      operations: operationChanges.map((changes) => ({ changes: entryChangesWire(changes) })),
      txChangesAfter: [],
    },
  });
}

export type HeaderFields = {
  sequence: number;
  previousHash: Uint8Array;
  closeTime: bigint;
  txSetHash: Uint8Array;
  txSetResultHash: Uint8Array;
  totalCoinsStroops: bigint;
  feePoolStroops: bigint;
  baseFeeStroops: bigint;
  baseReserveStroops: bigint;
  maxTxSetSize: number;
  protocolVersion: number;
};

export function ledgerHeader(fields: HeaderFields): xdr.LedgerHeader {
  return xdr.LedgerHeader.fromXdrObject({
    ledgerVersion: fields.protocolVersion,
    previousLedgerHash: fields.previousHash,
    scpValue: { txSetHash: fields.txSetHash, closeTime: fields.closeTime, upgrades: [], ext: { v: 0 } },
    txSetResultHash: fields.txSetResultHash,
    bucketListHash: sha256(fields.previousHash, fields.txSetResultHash),
    ledgerSeq: fields.sequence,
    totalCoins: fields.totalCoinsStroops,
    feePool: fields.feePoolStroops,
    inflationSeq: 0,
    idPool: 0n,
    baseFee: Number(fields.baseFeeStroops),
    baseReserve: Number(fields.baseReserveStroops),
    maxTxSetSize: fields.maxTxSetSize,
    skipList: [zeroHash, zeroHash, zeroHash, zeroHash],
    ext: { v: 0 },
  });
}

export type ClosedTransactionXdr = {
  hash: string;
  envelopeXdr: string;
  resultXdr: string;
  resultMetaXdr: string;
  feeMetaXdr: string;
};

/** LedgerCloseMeta v0: the header, the transaction set and each transaction's result and meta. */
export function ledgerCloseMeta(
  headerXdr: string,
  hash: string,
  transactions: ClosedTransactionXdr[],
): xdr.LedgerCloseMeta {
  const header = xdr.LedgerHeader.fromXdr(headerXdr, 'base64').toXdrObject();
  return xdr.LedgerCloseMeta.fromXdrObject({
    v: 0,
    v0: {
      ledgerHeader: { hash: Buffer.from(hash, 'hex'), header, ext: { v: 0 } },
      txSet: {
        previousLedgerHash: header.previousLedgerHash,
        txs: transactions.map((tx) =>
          xdr.TransactionEnvelope.fromXdr(tx.envelopeXdr, 'base64').toXdrObject(),
        ),
      },
      txProcessing: transactions.map((tx) => ({
        result: {
          transactionHash: Buffer.from(tx.hash, 'hex'),
          result: xdr.TransactionResult.fromXdr(tx.resultXdr, 'base64').toXdrObject(),
        },
        feeProcessing: xdr
          .decodeArray(xdr.LedgerEntryChange, tx.feeMetaXdr, 'base64')
          .map((change) => change.toXdrObject()),
        txApplyProcessing: xdr.TransactionMeta.fromXdr(tx.resultMetaXdr, 'base64').toXdrObject(),
      })),
      upgradesProcessing: [],
      scpInfo: [],
    },
  });
}
