import { StrKey, type xdr } from '@stellar/stellar-sdk';
import { assert } from '../platform/assert.ts';
import type { OperationOutcome } from './codes.ts';
import { accountRef } from './envelope.ts';
import { baseReserveStroops, int64MaxStroops } from './limits.ts';
import {
  applyPathPaymentStrictReceive,
  applyPathPaymentStrictSend,
  checkPathPayment,
} from './path-payments.ts';
import { type Account, type CreditAsset, type Overlay, trustlineKey } from './state.ts';

/**
 * The operations settledesk uses (path payments are in `path-payments.ts`), with Stellar Core's checks in Core's order. Static checks
 * (`checkOperation`) run at submission; `applyOperation` runs when the ledger closes.
 */

export type Asset = { type: 'native' } | ({ type: 'credit' } & CreditAsset);

const assetCodePattern = /^[A-Za-z0-9]{1,12}$/;

function decodeCode(bytes: Uint8Array): string {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end -= 1;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

export function assetOf(asset: xdr.Asset | xdr.ChangeTrustAsset): Asset | undefined {
  switch (asset.type) {
    case 'assetTypeNative':
      return { type: 'native' };
    case 'assetTypeCreditAlphanum4':
    case 'assetTypeCreditAlphanum12': {
      const alpha = asset.type === 'assetTypeCreditAlphanum4' ? asset.alphaNum4 : asset.alphaNum12;
      const code = decodeCode(alpha.assetCode.value);
      if (!assetCodePattern.test(code)) return undefined;
      return { type: 'credit', code, issuer: StrKey.encodeEd25519PublicKey(alpha.issuer.ed25519.value) };
    }
    default:
      return undefined;
  }
}

export function minimumBalance(account: Account, extraSubentries = 0): bigint {
  return BigInt(2 + account.subentryCount + extraSubentries) * baseReserveStroops;
}

function available(account: Account): bigint {
  return account.balanceStroops - minimumBalance(account);
}

export function isSupported(body: xdr.OperationBody): boolean {
  return (
    body.type === 'createAccount' ||
    body.type === 'payment' ||
    body.type === 'changeTrust' ||
    body.type === 'pathPaymentStrictReceive' ||
    body.type === 'pathPaymentStrictSend'
  );
}

/** Checks that need no state. Returns the failing outcome, or undefined when the operation is well formed. */
export function checkOperation(body: xdr.OperationBody, sourceId: string): OperationOutcome | undefined {
  switch (body.type) {
    case 'createAccount': {
      const destination = StrKey.encodeEd25519PublicKey(body.createAccountOp.destination.ed25519.value);
      const malformed = body.createAccountOp.startingBalance <= 0n || destination === sourceId;
      return malformed ? { kind: 'create_account', code: 'op_malformed' } : undefined;
    }
    case 'payment': {
      const malformed = body.paymentOp.amount <= 0n || assetOf(body.paymentOp.asset) === undefined;
      return malformed ? { kind: 'payment', code: 'op_malformed' } : undefined;
    }
    case 'changeTrust': {
      const asset = assetOf(body.changeTrustOp.line);
      const malformed =
        asset === undefined ||
        asset.type === 'native' ||
        asset.issuer === sourceId ||
        body.changeTrustOp.limit < 0n;
      return malformed ? { kind: 'change_trust', code: 'op_malformed' } : undefined;
    }
    case 'pathPaymentStrictReceive':
    case 'pathPaymentStrictSend':
      return checkPathPayment(body);
    default:
      return { kind: 'outer', code: 'op_not_supported' };
  }
}

export type OperationContext = { overlay: Overlay; sourceId: string; ledger: number };

export function applyOperation(body: xdr.OperationBody, context: OperationContext): OperationOutcome {
  switch (body.type) {
    case 'createAccount':
      return { kind: 'create_account', code: createAccount(body.createAccountOp, context) };
    case 'payment':
      return { kind: 'payment', code: payment(body.paymentOp, context) };
    case 'changeTrust':
      return { kind: 'change_trust', code: changeTrust(body.changeTrustOp, context) };
    case 'pathPaymentStrictReceive':
      return applyPathPaymentStrictReceive(body.pathPaymentStrictReceiveOp, context);
    case 'pathPaymentStrictSend':
      return applyPathPaymentStrictSend(body.pathPaymentStrictSendOp, context);
    default:
      return { kind: 'outer', code: 'op_not_supported' };
  }
}

function touch(account: Account, ledger: number, balanceStroops: bigint): Account {
  return { ...account, balanceStroops, lastModifiedLedger: ledger };
}

function createAccount(op: xdr.CreateAccountOp, { overlay, sourceId, ledger }: OperationContext) {
  const destination = StrKey.encodeEd25519PublicKey(op.destination.ed25519.value);
  const source = overlay.account(sourceId);
  assert(source !== undefined, 'operation source vanished during apply');
  if (overlay.account(destination) !== undefined) return 'op_already_exists';
  if (op.startingBalance < 2n * baseReserveStroops) return 'op_low_reserve';
  if (available(source) < op.startingBalance) return 'op_underfunded';
  overlay.putAccount(touch(source, ledger, source.balanceStroops - op.startingBalance));
  overlay.putAccount({
    id: destination,
    balanceStroops: op.startingBalance,
    // A new account's sequence starts at the ledger number shifted into the high 32 bits.
    sequence: BigInt(ledger) << 32n,
    subentryCount: 0,
    lastModifiedLedger: ledger,
  });
  return 'op_success';
}

function payment(op: xdr.PaymentOp, context: OperationContext) {
  const destinationId = accountRef(op.destination).accountId;
  const asset = assetOf(op.asset);
  if (asset === undefined) return 'op_malformed';
  if (context.overlay.account(destinationId) === undefined) return 'op_no_destination';
  return asset.type === 'native'
    ? nativePayment(destinationId, op.amount, context)
    : creditPayment(destinationId, asset, op.amount, context);
}

function nativePayment(
  destinationId: string,
  amount: bigint,
  { overlay, sourceId, ledger }: OperationContext,
) {
  const source = overlay.account(sourceId);
  const destination = overlay.account(destinationId);
  assert(source !== undefined && destination !== undefined, 'payment account vanished');
  if (sourceId === destinationId) return available(source) < amount ? 'op_underfunded' : 'op_success';
  if (destination.balanceStroops > int64MaxStroops - amount) return 'op_line_full';
  if (available(source) < amount) return 'op_underfunded';
  overlay.putAccount(touch(source, ledger, source.balanceStroops - amount));
  overlay.putAccount(touch(destination, ledger, destination.balanceStroops + amount));
  return 'op_success';
}

/** Core credits the destination before debiting the source, so destination errors come first. */
function creditPayment(
  destinationId: string,
  asset: CreditAsset,
  amount: bigint,
  { overlay, sourceId, ledger }: OperationContext,
) {
  const destinationIsIssuer = destinationId === asset.issuer;
  const sourceIsIssuer = sourceId === asset.issuer;
  const target = destinationIsIssuer ? undefined : overlay.trustline(destinationId, asset);
  if (!destinationIsIssuer) {
    if (target === undefined) return 'op_no_trust';
    if (!target.authorized) return 'op_not_authorized';
    if (target.balanceStroops > target.limitStroops - amount) return 'op_line_full';
  }
  const origin = sourceIsIssuer ? undefined : overlay.trustline(sourceId, asset);
  if (!sourceIsIssuer) {
    if (origin === undefined) return 'op_src_no_trust';
    if (!origin.authorized) return 'op_src_not_authorized';
    if (origin.balanceStroops < amount) return 'op_underfunded';
  }
  if (sourceId === destinationId) return 'op_success';
  if (origin !== undefined) {
    overlay.putTrustline({
      ...origin,
      balanceStroops: origin.balanceStroops - amount,
      lastModifiedLedger: ledger,
    });
  }
  const credited = destinationIsIssuer ? undefined : overlay.trustline(destinationId, asset);
  if (credited !== undefined) {
    overlay.putTrustline({
      ...credited,
      balanceStroops: credited.balanceStroops + amount,
      lastModifiedLedger: ledger,
    });
  }
  return 'op_success';
}

function changeTrust(op: xdr.ChangeTrustOp, { overlay, sourceId, ledger }: OperationContext) {
  const asset = assetOf(op.line);
  if (asset === undefined || asset.type === 'native') return 'op_malformed';
  const source = overlay.account(sourceId);
  assert(source !== undefined, 'operation source vanished during apply');
  const existing = overlay.trustline(sourceId, asset);
  if (existing !== undefined) {
    if (op.limit < existing.balanceStroops) return 'op_invalid_limit';
    if (op.limit === 0n) {
      overlay.set(trustlineKey(sourceId, asset), undefined);
      overlay.putAccount({ ...source, subentryCount: source.subentryCount - 1, lastModifiedLedger: ledger });
      return 'op_success';
    }
    overlay.putTrustline({ ...existing, limitStroops: op.limit, lastModifiedLedger: ledger });
    return 'op_success';
  }
  if (op.limit === 0n) return 'op_invalid_limit';
  if (overlay.account(asset.issuer) === undefined) return 'op_no_issuer';
  if (source.balanceStroops < minimumBalance(source, 1)) return 'op_low_reserve';
  overlay.putAccount({ ...source, subentryCount: source.subentryCount + 1, lastModifiedLedger: ledger });
  overlay.putTrustline({
    accountId: sourceId,
    asset: { code: asset.code, issuer: asset.issuer },
    balanceStroops: 0n,
    limitStroops: op.limit,
    authorized: true,
    lastModifiedLedger: ledger,
  });
  return 'op_success';
}
