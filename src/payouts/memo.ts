import { StrKey } from '@stellar/stellar-sdk';
import { DomainError } from '../platform/errors.ts';

/** Memo rules of the Stellar protocol; a payout is refused before it is accepted, never on chain. */

export const memoTypes = ['none', 'text', 'id', 'hash', 'return'] as const;
export type MemoType = (typeof memoTypes)[number];
export type PayoutMemo = { type: MemoType; value: string | null };

export const memoTextBytesMax = 28;
const uint64Max = 18_446_744_073_709_551_615n;

export function checkDestination(destination: string): void {
  if (!StrKey.isValidEd25519PublicKey(destination) && !StrKey.isValidMed25519PublicKey(destination)) {
    throw new DomainError('payouts/invalid-destination', 'destination must be a Stellar G… or M… address');
  }
}

export function checkMemo(memo: { type: MemoType; value?: string } | undefined): PayoutMemo {
  if (memo === undefined || memo.type === 'none') {
    if (memo?.value !== undefined) throw new DomainError('payouts/invalid-memo', 'a none memo has no value');
    return { type: 'none', value: null };
  }
  const value = memo.value ?? '';
  switch (memo.type) {
    case 'text':
      if (Buffer.byteLength(value, 'utf8') > memoTextBytesMax) {
        throw new DomainError(
          'payouts/invalid-memo',
          `a text memo is at most ${memoTextBytesMax} bytes of UTF-8`,
        );
      }
      return { type: 'text', value };
    case 'id':
      if (!/^\d{1,20}$/.test(value) || BigInt(value) > uint64Max) {
        throw new DomainError('payouts/invalid-memo', 'an id memo is an unsigned 64-bit integer in decimal');
      }
      return { type: 'id', value: BigInt(value).toString() };
    case 'hash':
    case 'return':
      if (!/^[0-9a-fA-F]{64}$/.test(value)) {
        throw new DomainError(
          'payouts/invalid-memo',
          `a ${memo.type} memo is 32 bytes in hex (64 characters)`,
        );
      }
      return { type: memo.type, value: value.toLowerCase() };
  }
}
