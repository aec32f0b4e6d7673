import type { Asset } from './operations.ts';

/**
 * Result codes as Horizon spells them, each with its XDR value. The names are the public contract
 * (clients match on `tx_bad_seq`, `op_underfunded`), so they are never renamed or reused.
 */

export const transactionCodes = {
  tx_fee_bump_inner_success: 1,
  tx_success: 0,
  tx_failed: -1,
  tx_too_early: -2,
  tx_too_late: -3,
  tx_missing_operation: -4,
  tx_bad_seq: -5,
  tx_bad_auth: -6,
  tx_insufficient_balance: -7,
  tx_no_source_account: -8,
  tx_insufficient_fee: -9,
  tx_bad_auth_extra: -10,
  tx_internal_error: -11,
  tx_not_supported: -12,
  tx_fee_bump_inner_failed: -13,
  tx_malformed: -16,
} as const;
export type TransactionCode = keyof typeof transactionCodes;

export const createAccountCodes = {
  op_success: 0,
  op_malformed: -1,
  op_underfunded: -2,
  op_low_reserve: -3,
  op_already_exists: -4,
} as const;

export const paymentCodes = {
  op_success: 0,
  op_malformed: -1,
  op_underfunded: -2,
  op_src_no_trust: -3,
  op_src_not_authorized: -4,
  op_no_destination: -5,
  op_no_trust: -6,
  op_not_authorized: -7,
  op_line_full: -8,
  op_no_issuer: -9,
} as const;

export const changeTrustCodes = {
  op_success: 0,
  op_malformed: -1,
  op_no_issuer: -2,
  op_invalid_limit: -3,
  op_low_reserve: -4,
  op_self_not_allowed: -5,
  op_trust_line_missing: -6,
  op_cannot_delete: -7,
} as const;

/**
 * Path payments share their codes but for -12. `op_no_issuer` (-9) is left out: Stellar Core has
 * not returned it since protocol 13, and its result arm would need the asset.
 */
const pathPaymentCommonCodes = {
  op_success: 0,
  op_malformed: -1,
  op_underfunded: -2,
  op_src_no_trust: -3,
  op_src_not_authorized: -4,
  op_no_destination: -5,
  op_no_trust: -6,
  op_not_authorized: -7,
  op_line_full: -8,
  op_too_few_offers: -10,
  op_cross_self: -11,
} as const;

export const pathPaymentStrictReceiveCodes = { ...pathPaymentCommonCodes, op_over_source_max: -12 } as const;
export const pathPaymentStrictSendCodes = { ...pathPaymentCommonCodes, op_under_dest_min: -12 } as const;

/** What a successful path payment moved: the source's debit and the destination's credit. */
export type PathDelivery = {
  destination: string;
  sendAsset: Asset;
  sentStroops: bigint;
  destAsset: Asset;
  receivedStroops: bigint;
};

/** Codes that replace an operation's own result: the operation never ran. */
export const operationOuterCodes = {
  op_bad_auth: -1,
  op_no_source_account: -2,
  op_not_supported: -3,
} as const;

export type OperationOutcome =
  | { kind: 'create_account'; code: keyof typeof createAccountCodes }
  | { kind: 'payment'; code: keyof typeof paymentCodes }
  | { kind: 'change_trust'; code: keyof typeof changeTrustCodes }
  | {
      kind: 'path_payment_strict_receive';
      code: keyof typeof pathPaymentStrictReceiveCodes;
      delivery?: PathDelivery;
    }
  | {
      kind: 'path_payment_strict_send';
      code: keyof typeof pathPaymentStrictSendCodes;
      delivery?: PathDelivery;
    }
  | { kind: 'outer'; code: keyof typeof operationOuterCodes };

export type OperationCode = OperationOutcome['code'];

/** A transaction's result before it is encoded as XDR or as Horizon's `result_codes`. */
export type TransactionOutcome = {
  code: TransactionCode;
  feeChargedStroops: bigint;
  operations?: OperationOutcome[];
  /** Set for fee-bump envelopes whose inner transaction was examined. */
  inner?: { hash: string; code: TransactionCode; operations?: OperationOutcome[] };
};

export function isSuccess(outcome: TransactionOutcome): boolean {
  return outcome.code === 'tx_success' || outcome.code === 'tx_fee_bump_inner_success';
}

export type ResultCodes = {
  transaction: TransactionCode;
  inner_transaction?: TransactionCode;
  operations?: string[];
};

export function resultCodes(outcome: TransactionOutcome): ResultCodes {
  const operations = outcome.inner?.operations ?? outcome.operations;
  return {
    transaction: outcome.code,
    ...(outcome.inner ? { inner_transaction: outcome.inner.code } : {}),
    ...(operations ? { operations: operations.map((operation) => operation.code) } : {}),
  };
}
