/**
 * Stellar carries every amount as int64 stroops: 7 decimals, whatever the asset. This is the one
 * copy of that fact; the ledger keeps each asset at its own precision and converts through it.
 */
export const stellarDecimals = 7;
export const stroopsPerUnit = 10n ** BigInt(stellarDecimals);
