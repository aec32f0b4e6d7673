import { xdr } from '@stellar/stellar-sdk';
import { formatAmount } from '../money/money.ts';
import type { HorizonPayment } from '../stellar/horizon-read.ts';
import { stellarDecimals } from '../stellar/units.ts';
import type { SuspenseReason as DepositSuspenseReason } from './data.ts';

/**
 * What a Horizon payment record brought into the receiving account: one definition shared by the
 * deposit watcher (which credits it) and the deposits detector (which checks a credit against it).
 */

/** A record the watcher cannot turn into money: set aside for a person, with this message. */
export class Unreadable extends Error {
  override name = 'Unreadable';
}

export type SuspenseReason = Extract<
  DepositSuspenseReason,
  'no_memo' | 'unknown_memo' | 'account_refused' | 'account_merge'
>;
/** Money a record brought in: `parkReason` when it goes to suspense whatever its memo says. */
export type Incoming = { asset: string; amount: string; parkReason?: SuspenseReason };

function assetOf(record: HorizonPayment): string {
  return record.asset_type === 'native' ? 'XLM' : `${record.asset_code ?? ''}:${record.asset_issuer ?? ''}`;
}

/** A paging token is a TOID: its low 12 bits are the operation's 1-based index in its transaction. */
const operationIndexBits = 0xfffn;

/**
 * An account merge's amount is only in its result: `sourceAccountBalance` in the transaction's
 * result XDR (joined), at the operation's index (of the inner transaction for a fee bump).
 */
function mergedAmount(record: HorizonPayment): string {
  const resultXdr = record.transaction?.result_xdr;
  if (resultXdr === undefined) throw new Unreadable('an account merge without its transaction result');
  let result: ReturnType<xdr.TransactionResult['toXdrObject']>['result'];
  try {
    result = xdr.TransactionResult.fromXdr(resultXdr, 'base64').toXdrObject().result;
  } catch {
    throw new Unreadable('an account merge whose transaction result does not decode');
  }
  const inner = result.code === 1 ? result.innerResultPair.result.result : result;
  const index = Number(BigInt(record.paging_token) & operationIndexBits) - 1;
  const operation = inner.code === 0 ? inner.results[index] : undefined;
  const merge =
    operation?.code === 0 && operation.tr.type === 8 ? operation.tr.accountMergeResult : undefined;
  if (merge?.code !== 0) throw new Unreadable('an account merge without its merged balance');
  return formatAmount(merge.sourceAccountBalance, stellarDecimals);
}

/**
 * What a record brought into the receiving account, or undefined when it brought nothing.
 * Horizon's payments of an account are `create_account`, `payment`, both path payments and
 * `account_merge` (and, on Soroban, `invoke_host_function` transfers). For a payment and a path
 * payment, `amount` and `asset_*` are what the destination received, whatever the source sent.
 * A claimable balance claimed by the receiving account is not among them (Horizon lists it in
 * operations and effects only); the service never claims one, so such a claim is an operator's
 * act outside it, seen by the chain_balance detector.
 */
export function incomingOf(record: HorizonPayment, receiving: string): Incoming | undefined {
  if (!record.transaction_successful) return undefined;
  switch (record.type) {
    case 'payment':
    case 'path_payment_strict_send':
    case 'path_payment_strict_receive':
      // From the receiving account itself nothing comes in: a payment to itself moves nothing, and
      // a path payment to itself is a conversion, which the outgoing_payments detector reports.
      if (record.to !== receiving || record.from === receiving) return undefined;
      return { asset: assetOf(record), amount: record.amount ?? '' };
    case 'account_merge':
      // The merged balance is chosen by nobody and named by no field of the record: parked.
      if (record.into !== receiving) return undefined;
      return { asset: 'XLM', amount: mergedAmount(record), parkReason: 'account_merge' };
    case 'create_account':
      // Only the receiving account's own creation can name it: its opening balance, which is the
      // chain_balance baseline, not a deposit.
      return undefined;
    default:
      // Listed for the receiving account by someone else (a Soroban transfer, a type newer than
      // this code): it may have brought money, so it is set aside for a person, never skipped.
      if (record.source_account === receiving) return undefined;
      throw new Unreadable(`record type ${record.type} into the receiving account is not understood`);
  }
}
