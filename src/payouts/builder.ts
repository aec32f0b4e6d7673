import {
  Account,
  Asset,
  type Keypair,
  Memo,
  Operation,
  StrKey,
  Transaction,
  TransactionBuilder,
} from '@stellar/stellar-sdk';
import { formatAmount } from '../money/money.ts';
import { assert } from '../platform/assert.ts';
import type { PayoutRow } from './data.ts';

/** Builds and signs one settlement transaction: a channel account's sequence, the hot wallet's money. */

export type BuiltTransaction = { envelopeXdr: string; hash: string; feeStroops: bigint };

export function stellarAsset(code: string): Asset {
  if (code === 'XLM') return Asset.native();
  const [assetCode = '', issuer = ''] = code.split(':');
  return new Asset(assetCode, issuer);
}

function memoOf(payout: PayoutRow): Memo {
  switch (payout.memoType) {
    case 'none':
      return Memo.none();
    case 'text':
      return Memo.text(payout.memoValue ?? '');
    case 'id':
      return Memo.id(payout.memoValue ?? '0');
    case 'hash':
      return Memo.hash(payout.memoValue ?? '');
    case 'return':
      return Memo.return(payout.memoValue ?? '');
  }
}

/**
 * Payouts batch only when none carries a memo: a memo belongs to the whole transaction, so a
 * payout with a memo travels alone. A batch holds one asset.
 */
export function chooseBatch(ready: readonly PayoutRow[], batchSizeMax: number): PayoutRow[] {
  const first = ready[0];
  if (first === undefined) return [];
  if (first.memoType !== 'none') return [first];
  return ready
    .filter((payout) => payout.memoType === 'none' && payout.asset === first.asset)
    .slice(0, batchSizeMax);
}

export function operationCount(envelopeXdr: string, networkPassphrase: string): number {
  return TransactionBuilder.fromXDR(envelopeXdr, networkPassphrase).operations.length;
}

/** Wraps a stored settlement transaction in a fee bump paid and signed by the hot wallet. */
export function buildFeeBump(input: {
  hotWallet: Keypair;
  envelopeXdr: string;
  feePerOperationStroops: bigint;
  networkPassphrase: string;
}): { envelopeXdr: string; feeStroops: bigint } {
  const inner = TransactionBuilder.fromXDR(input.envelopeXdr, input.networkPassphrase);
  assert(inner instanceof Transaction, 'a settlement envelope is never itself a fee bump');
  const bump = TransactionBuilder.buildFeeBumpTransaction(
    input.hotWallet,
    input.feePerOperationStroops.toString(),
    inner,
    input.networkPassphrase,
  );
  bump.sign(input.hotWallet);
  return { envelopeXdr: bump.toEnvelope().toXDR('base64'), feeStroops: BigInt(bump.fee) };
}

/** The payout's operation: a payment, or, for XLM to an account that does not exist yet, its creation. */
function operationOf(payout: PayoutRow, hotWallet: string, creates: boolean) {
  const amount = formatAmount(payout.amountMinor, payout.precision);
  if (creates) {
    assert(
      payout.asset === 'XLM' && StrKey.isValidEd25519PublicKey(payout.destination),
      `payout ${payout.id}: only XLM to a G… account can create it`,
    );
    return Operation.createAccount({
      source: hotWallet,
      destination: payout.destination,
      startingBalance: amount,
    });
  }
  return Operation.payment({
    source: hotWallet,
    destination: payout.destination,
    asset: stellarAsset(payout.asset),
    amount,
  });
}

export function buildSettlement(input: {
  channel: Keypair;
  hotWallet: Keypair;
  sequence: bigint;
  payouts: readonly PayoutRow[];
  /** Ids of the payouts paid by creating their destination account (XLM to a `G…` account only). */
  creations: ReadonlySet<string>;
  feePerOperationStroops: bigint;
  maxTime: bigint;
  maxLedger: number;
  networkPassphrase: string;
}): BuiltTransaction {
  const source = new Account(input.channel.publicKey(), (input.sequence - 1n).toString());
  const feeStroops = input.feePerOperationStroops * BigInt(input.payouts.length);
  const builder = new TransactionBuilder(source, {
    fee: input.feePerOperationStroops.toString(),
    networkPassphrase: input.networkPassphrase,
    timebounds: { minTime: 0, maxTime: Number(input.maxTime) },
    ledgerbounds: { minLedger: 0, maxLedger: input.maxLedger },
    memo: input.payouts.length === 1 && input.payouts[0] ? memoOf(input.payouts[0]) : Memo.none(),
  });
  for (const payout of input.payouts) {
    builder.addOperation(operationOf(payout, input.hotWallet.publicKey(), input.creations.has(payout.id)));
  }
  const transaction = builder.build();
  transaction.sign(input.channel, input.hotWallet);
  return {
    envelopeXdr: transaction.toEnvelope().toXDR('base64'),
    hash: Buffer.from(transaction.hash()).toString('hex'),
    feeStroops,
  };
}
