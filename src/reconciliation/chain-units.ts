import { parseAmount } from '../money/money.ts';
import type { HorizonPayment } from '../stellar/horizon-read.ts';
import { stellarDecimals } from '../stellar/units.ts';

/**
 * Stellar amounts are int64 stroops (7 decimals) whatever the asset; the ledger keeps each asset
 * at its own precision. Comparisons with the chain are made in stroops.
 */

export function parseStroops(text: string | undefined): bigint | undefined {
  const parsed = parseAmount(text ?? '', { precision: stellarDecimals, allowZero: true });
  return parsed.ok ? parsed.minor : undefined;
}

/** Ledger minor units as stroops; a precision above 7 drops what the chain cannot carry. */
export function toStroops(minor: bigint, precision: number): bigint {
  return precision <= stellarDecimals
    ? minor * 10n ** BigInt(stellarDecimals - precision)
    : minor / 10n ** BigInt(precision - stellarDecimals);
}

/** Stroops as ledger minor units, or undefined when the asset's precision cannot hold them exactly. */
export function fromStroops(stroops: bigint, precision: number): bigint | undefined {
  if (precision >= stellarDecimals) return stroops * 10n ** BigInt(precision - stellarDecimals);
  const unit = 10n ** BigInt(stellarDecimals - precision);
  return stroops % unit === 0n ? stroops / unit : undefined;
}

/** The ledger's code for a Horizon asset: `XLM`, or `CODE:ISSUER`. */
export function assetCodeOf(
  fields: Pick<HorizonPayment, 'asset_type' | 'asset_code' | 'asset_issuer'>,
): string {
  return fields.asset_type === 'native' ? 'XLM' : `${fields.asset_code ?? ''}:${fields.asset_issuer ?? ''}`;
}

/** The ledger sequence encoded in a Horizon paging token (a TOID: ledger << 32 | order << 12 | index). */
export function ledgerOfToken(token: bigint): number {
  return Number(token >> 32n);
}

/** The 0-based operation index within its transaction, from a paging token. */
export function operationIndexOfToken(token: bigint): number {
  return Number(token & 0xfffn) - 1;
}

/** The first paging token of a ledger: everything Horizon has up to `ledger` sorts before it. */
export function tokenAfterLedger(ledger: number): bigint {
  return BigInt(ledger + 1) << 32n;
}
