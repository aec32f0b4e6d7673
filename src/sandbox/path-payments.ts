import type { xdr } from '@stellar/stellar-sdk';
import { assert } from '../platform/assert.ts';
import type {
  OperationOutcome,
  PathDelivery,
  pathPaymentStrictReceiveCodes,
  pathPaymentStrictSendCodes,
} from './codes.ts';
import { accountRef } from './envelope.ts';
import { int64MaxStroops } from './limits.ts';
import { type Asset, assetOf, minimumBalance, type OperationContext } from './operations.ts';
import type { Overlay } from './state.ts';

/**
 * Path payments (strict receive and strict send) without an order book. A hop between two equal
 * assets moves nothing; a hop between two different assets is priced by `exchangeRates` and served
 * by the issuer of the credit side, which issues or takes back its own asset and pays or receives
 * the lumens of a native leg. Lumens are therefore conserved; a pair the table does not price, or
 * an issuer without the lumens to pay, is `op_too_few_offers`, as an empty order book is on a real
 * network. The checks run in Stellar Core's order.
 */

type Rate = { lumens: bigint; units: bigint };

/**
 * What one unit of an asset is worth in lumens, by asset code (any issuer). Fixed, so that tests
 * can compute what a conversion delivers: 1 USDC = 10 XLM, 1 EURC = 11 XLM.
 */
export const exchangeRates: ReadonlyMap<string, Rate> = new Map([
  ['XLM', { lumens: 1n, units: 1n }],
  ['USDC', { lumens: 10n, units: 1n }],
  ['EURC', { lumens: 11n, units: 1n }],
]);

type PathBody = xdr.PathPaymentStrictReceiveOp | xdr.PathPaymentStrictSendOp;
type Rounding = 'down' | 'up';

function sameAsset(left: Asset, right: Asset): boolean {
  if (left.type === 'native' || right.type === 'native') return left.type === right.type;
  return left.code === right.code && left.issuer === right.issuer;
}

function rateOf(asset: Asset): Rate | undefined {
  return exchangeRates.get(asset.type === 'native' ? 'XLM' : asset.code);
}

/** The assets the payment passes through, from the source's to the destination's. */
function hopsOf(op: PathBody, sendAsset: xdr.Asset, destAsset: xdr.Asset): Asset[] | undefined {
  const assets = [sendAsset, ...op.path, destAsset].map((asset) => assetOf(asset));
  return assets.every((asset) => asset !== undefined) ? (assets as Asset[]) : undefined;
}

export function checkPathPayment(body: xdr.OperationBody): OperationOutcome | undefined {
  if (body.type === 'pathPaymentStrictReceive') {
    const op = body.pathPaymentStrictReceiveOp;
    const malformed =
      op.destAmount <= 0n || op.sendMax <= 0n || hopsOf(op, op.sendAsset, op.destAsset) === undefined;
    return malformed ? { kind: 'path_payment_strict_receive', code: 'op_malformed' } : undefined;
  }
  if (body.type === 'pathPaymentStrictSend') {
    const op = body.pathPaymentStrictSendOp;
    const malformed =
      op.sendAmount <= 0n || op.destMin <= 0n || hopsOf(op, op.sendAsset, op.destAsset) === undefined;
    return malformed ? { kind: 'path_payment_strict_send', code: 'op_malformed' } : undefined;
  }
  return undefined;
}

type HopFailure = 'op_too_few_offers';
type SourceFailure = 'op_underfunded' | 'op_src_no_trust' | 'op_src_not_authorized';
type DestinationFailure = 'op_no_destination' | 'op_no_trust' | 'op_not_authorized' | 'op_line_full';

/**
 * Converts `amount` of `from` into `to` at the table's rate, rounded in the market's favour as an
 * order book does: `down` for what the payment receives, `up` for what it must pay.
 */
function convertHop(from: Asset, to: Asset, amount: bigint, rounding: Rounding): bigint | HopFailure {
  if (sameAsset(from, to)) return amount;
  const [fromRate, toRate] = [rateOf(from), rateOf(to)];
  if (fromRate === undefined || toRate === undefined) return 'op_too_few_offers';
  const numerator = amount * fromRate.lumens * toRate.units;
  const denominator = fromRate.units * toRate.lumens;
  const converted =
    rounding === 'down' ? numerator / denominator : (numerator + denominator - 1n) / denominator;
  if (converted > int64MaxStroops) return 'op_too_few_offers';
  return converted;
}

/** The lumen legs of a hop: the credit side's issuer takes the lumens sold or pays the lumens bought. */
function settleHop(
  overlay: Overlay,
  ledger: number,
  hop: { from: Asset; to: Asset; fromStroops: bigint; toStroops: bigint },
): HopFailure | undefined {
  const { from, to } = hop;
  if (sameAsset(from, to)) return undefined;
  // Between two credit assets the issuers only issue and take back: no lumens move.
  const credit = from.type === 'native' ? to : to.type === 'native' ? from : undefined;
  if (credit === undefined || credit.type === 'native') return undefined;
  const issuer = overlay.account(credit.issuer);
  if (issuer === undefined) return 'op_too_few_offers';
  const lumens = from.type === 'native' ? hop.fromStroops : -hop.toStroops;
  if (lumens < 0n && issuer.balanceStroops - minimumBalance(issuer) < -lumens) return 'op_too_few_offers';
  if (lumens > 0n && issuer.balanceStroops > int64MaxStroops - lumens) return 'op_too_few_offers';
  overlay.putAccount({
    ...issuer,
    balanceStroops: issuer.balanceStroops + lumens,
    lastModifiedLedger: ledger,
  });
  return undefined;
}

/** Debits what the source sends; an issuer sending its own asset issues it. */
function debitSource(
  overlay: Overlay,
  ledger: number,
  sourceId: string,
  asset: Asset,
  amount: bigint,
): SourceFailure | undefined {
  if (asset.type === 'native') {
    const source = overlay.account(sourceId);
    assert(source !== undefined, 'operation source vanished during apply');
    if (source.balanceStroops - minimumBalance(source) < amount) return 'op_underfunded';
    overlay.putAccount({
      ...source,
      balanceStroops: source.balanceStroops - amount,
      lastModifiedLedger: ledger,
    });
    return undefined;
  }
  if (sourceId === asset.issuer) return undefined;
  const line = overlay.trustline(sourceId, asset);
  if (line === undefined) return 'op_src_no_trust';
  if (!line.authorized) return 'op_src_not_authorized';
  if (line.balanceStroops < amount) return 'op_underfunded';
  overlay.putTrustline({ ...line, balanceStroops: line.balanceStroops - amount, lastModifiedLedger: ledger });
  return undefined;
}

/** Credits what the destination receives; an issuer receiving its own asset takes it back. */
function creditDestination(
  overlay: Overlay,
  ledger: number,
  destinationId: string,
  asset: Asset,
  amount: bigint,
): DestinationFailure | undefined {
  const destination = overlay.account(destinationId);
  if (destination === undefined) return 'op_no_destination';
  if (asset.type === 'native') {
    if (destination.balanceStroops > int64MaxStroops - amount) return 'op_line_full';
    overlay.putAccount({
      ...destination,
      balanceStroops: destination.balanceStroops + amount,
      lastModifiedLedger: ledger,
    });
    return undefined;
  }
  if (destinationId === asset.issuer) return undefined;
  const line = overlay.trustline(destinationId, asset);
  if (line === undefined) return 'op_no_trust';
  if (!line.authorized) return 'op_not_authorized';
  if (line.balanceStroops > line.limitStroops - amount) return 'op_line_full';
  overlay.putTrustline({ ...line, balanceStroops: line.balanceStroops + amount, lastModifiedLedger: ledger });
  return undefined;
}

/** Core: the destination must exist, is credited first, then the path is walked backwards. */
export function applyPathPaymentStrictReceive(
  op: xdr.PathPaymentStrictReceiveOp,
  { overlay, sourceId, ledger }: OperationContext,
): OperationOutcome {
  const fail = (code: keyof typeof pathPaymentStrictReceiveCodes): OperationOutcome => ({
    kind: 'path_payment_strict_receive',
    code,
  });
  const hops = hopsOf(op, op.sendAsset, op.destAsset);
  if (hops === undefined) return fail('op_malformed');
  const destinationId = accountRef(op.destination).accountId;
  const destAsset = hops[hops.length - 1] as Asset;
  const credited = creditDestination(overlay, ledger, destinationId, destAsset, op.destAmount);
  if (credited !== undefined) return fail(credited);
  let owed = op.destAmount;
  for (let index = hops.length - 1; index > 0; index -= 1) {
    const [from, to] = [hops[index - 1] as Asset, hops[index] as Asset];
    const paid = convertHop(to, from, owed, 'up');
    if (typeof paid === 'string') return fail(paid);
    const settled = settleHop(overlay, ledger, { from, to, fromStroops: paid, toStroops: owed });
    if (settled !== undefined) return fail(settled);
    owed = paid;
  }
  if (owed > op.sendMax) return fail('op_over_source_max');
  const sendAsset = hops[0] as Asset;
  const debited = debitSource(overlay, ledger, sourceId, sendAsset, owed);
  if (debited !== undefined) return fail(debited);
  const delivery: PathDelivery = {
    destination: destinationId,
    sendAsset,
    sentStroops: owed,
    destAsset,
    receivedStroops: op.destAmount,
  };
  return { kind: 'path_payment_strict_receive', code: 'op_success', delivery };
}

/** Core: the destination must exist, the source is debited first, then the path is walked forwards. */
export function applyPathPaymentStrictSend(
  op: xdr.PathPaymentStrictSendOp,
  { overlay, sourceId, ledger }: OperationContext,
): OperationOutcome {
  const fail = (code: keyof typeof pathPaymentStrictSendCodes): OperationOutcome => ({
    kind: 'path_payment_strict_send',
    code,
  });
  const hops = hopsOf(op, op.sendAsset, op.destAsset);
  if (hops === undefined) return fail('op_malformed');
  const destinationId = accountRef(op.destination).accountId;
  if (overlay.account(destinationId) === undefined) return fail('op_no_destination');
  const sendAsset = hops[0] as Asset;
  const debited = debitSource(overlay, ledger, sourceId, sendAsset, op.sendAmount);
  if (debited !== undefined) return fail(debited);
  let carried = op.sendAmount;
  for (let index = 1; index < hops.length; index += 1) {
    const [from, to] = [hops[index - 1] as Asset, hops[index] as Asset];
    const received = convertHop(from, to, carried, 'down');
    if (typeof received === 'string') return fail(received);
    const settled = settleHop(overlay, ledger, { from, to, fromStroops: carried, toStroops: received });
    if (settled !== undefined) return fail(settled);
    carried = received;
  }
  if (carried < op.destMin) return fail('op_under_dest_min');
  const destAsset = hops[hops.length - 1] as Asset;
  const credited = creditDestination(overlay, ledger, destinationId, destAsset, carried);
  if (credited !== undefined) return fail(credited);
  const delivery: PathDelivery = {
    destination: destinationId,
    sendAsset,
    sentStroops: op.sendAmount,
    destAsset,
    receivedStroops: carried,
  };
  return { kind: 'path_payment_strict_send', code: 'op_success', delivery };
}
