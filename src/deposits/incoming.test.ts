import { Keypair, xdr } from '@stellar/stellar-sdk';
import { describe, expect, it } from 'vitest';
import type { HorizonPayment } from '../stellar/horizon-read.ts';
import { incomingOf, Unreadable } from './incoming.ts';

const hot = Keypair.random().publicKey();
const other = Keypair.random().publicKey();

/** A transaction result whose second operation merged `balance` stroops into its destination. */
function mergeResultXdr(balance: bigint): string {
  return xdr.TransactionResult.fromXdrObject({
    feeCharged: 200n,
    result: {
      code: 0,
      results: [
        { code: 0, tr: { type: 1, paymentResult: { code: 0 } } },
        { code: 0, tr: { type: 8, accountMergeResult: { code: 0, sourceAccountBalance: balance } } },
      ],
    },
    ext: { v: 0 },
  }).toXdr('base64');
}

function record(fields: Partial<HorizonPayment>): HorizonPayment {
  return {
    id: '4294971394',
    // Ledger 1, transaction 1, operation 2 (1-based).
    paging_token: '4294971394',
    type: 'payment',
    transaction_successful: true,
    transaction_hash: 'ab'.repeat(32),
    source_account: other,
    ...fields,
  };
}

describe('what a Horizon payment record brought into the receiving account', () => {
  it('takes a path payment at what the destination received, in the destination asset', () => {
    const path = record({
      type: 'path_payment_strict_send',
      from: other,
      to: hot,
      asset_type: 'credit_alphanum4',
      asset_code: 'USDC',
      asset_issuer: other,
      amount: '2.5000000',
      source_asset_type: 'native',
      source_amount: '25.0000000',
    } as Partial<HorizonPayment>);
    expect(incomingOf(path, hot)).toEqual({ asset: `USDC:${other}`, amount: '2.5000000' });
  });

  it('parks an account merge into the receiving account at the balance its result reports', () => {
    const merge = record({ type: 'account_merge', account: other, into: hot });
    merge.transaction = { result_xdr: mergeResultXdr(123_456_789n) };
    expect(incomingOf(merge, hot)).toEqual({
      asset: 'XLM',
      amount: '12.3456789',
      parkReason: 'account_merge',
    });
  });

  it('sets aside a merge whose amount cannot be read', () => {
    const merge = record({ type: 'account_merge', account: other, into: hot });
    expect(() => incomingOf(merge, hot)).toThrow(Unreadable);
  });

  it('sets aside a record type it does not understand instead of skipping it', () => {
    const soroban = record({ type: 'invoke_host_function' });
    expect(() => incomingOf(soroban, hot)).toThrow(
      'record type invoke_host_function into the receiving account is not understood',
    );
  });

  it('brings nothing for outgoing payments, payments to itself, failed transactions, its own creation, or merges elsewhere', () => {
    const cases = [
      record({ from: hot, to: other, asset_type: 'native', amount: '1.0000000' }),
      record({ from: hot, to: hot, asset_type: 'native', amount: '1.0000000', source_account: hot }),
      record({ type: 'path_payment_strict_receive', from: hot, to: hot, amount: '1.0000000' }),
      record({ from: other, to: hot, amount: '1.0000000', transaction_successful: false }),
      record({ type: 'create_account', funder: other, account: hot, starting_balance: '10000.0000000' }),
      record({ type: 'account_merge', account: hot, into: other }),
    ];
    for (const payment of cases) expect(incomingOf(payment, hot)).toBeUndefined();
  });
});
