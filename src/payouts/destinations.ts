import { StrKey } from '@stellar/stellar-sdk';
import { DomainError } from '../platform/errors.ts';
import { toStroops } from '../reconciliation/chain-units.ts';
import { baseReserveStroops } from '../sandbox/limits.ts';
import { stellarDecimals } from '../stellar/units.ts';
import type { DestinationAccount } from './chain.ts';

/**
 * What a payout's destination is, read before it is accepted: one of the service's own accounts
 * (never payable), or an account the chain knows or does not know. The read happens before the
 * database transaction opens, so a slow Stellar path never holds a connection or a lock; when no
 * path answers the payout is accepted and settlement decides, never refused on a guess.
 */

/**
 * A new account must start with two base reserves (1 XLM on the public network since 2019; the
 * sandbox mirrors it). Validators can vote the reserve up: a payout accepted under an older value
 * then fails `op_low_reserve` at settlement and is refunded once.
 */
export const accountMinimumBalanceStroops = 2n * baseReserveStroops;

export type DestinationScreen = {
  /** The hot wallet (also the deposit receiving account) and the channel accounts. */
  platformAccounts(): Promise<ReadonlySet<string>>;
  lookup(accountId: string, asset: string): Promise<DestinationAccount>;
};

/** `account` is undefined when it was not read (an invalid address, a platform account, no chain). */
export type ScreenedDestination = { platform: boolean; account: DestinationAccount | undefined };

/** The G account a destination pays: itself, or the one under a muxed `M…` address. */
export function baseAccountOf(destination: string): string {
  if (!StrKey.isValidMed25519PublicKey(destination)) return destination;
  return StrKey.encodeEd25519PublicKey(StrKey.decodeMed25519PublicKey(destination).subarray(0, 32));
}

export async function screenDestination(
  screen: DestinationScreen,
  destination: string,
  asset: string,
): Promise<ScreenedDestination> {
  const valid = StrKey.isValidEd25519PublicKey(destination) || StrKey.isValidMed25519PublicKey(destination);
  // An invalid address is refused by acceptPayout with its own problem; nothing to read for it.
  if (!valid) return { platform: false, account: undefined };
  const base = baseAccountOf(destination);
  if ((await screen.platformAccounts()).has(base)) {
    return { platform: true, account: undefined };
  }
  return { platform: false, account: await screen.lookup(base, asset) };
}

/** For callers that cannot read the chain (tests, benchmarks): nothing is refused on its account. */
export const unscreenedDestination: ScreenedDestination = { platform: false, account: undefined };

/**
 * Refuses a payout that could never be paid as asked, by what the chain said. XLM to a missing
 * account settles by creating it, so only an amount below the new account's minimum balance is
 * refused; a muxed address carries an id that an account creation cannot, so it needs the account.
 */
export function checkDestinationPayable(
  screened: ScreenedDestination,
  payout: { destination: string; asset: string; amountMinor: bigint; precision: number },
): void {
  if (screened.platform) {
    throw new DomainError(
      'payouts/destination-is-platform',
      "the destination is the service's own hot wallet or one of its channel accounts: the money would never leave",
    );
  }
  const { account } = screened;
  if (account?.kind === 'missing') {
    if (payout.asset !== 'XLM' || StrKey.isValidMed25519PublicKey(payout.destination)) {
      throw new DomainError(
        'payouts/destination-missing',
        payout.asset === 'XLM'
          ? 'the account under this muxed address does not exist on chain'
          : `the destination account does not exist on chain, so it cannot hold ${payout.asset}`,
      );
    }
    if (toStroops(payout.amountMinor, payout.precision) < accountMinimumBalanceStroops) {
      throw new DomainError(
        'payouts/below-account-reserve',
        `the destination account does not exist yet: creating it takes at least ${accountMinimumBalanceStroops / 10n ** BigInt(stellarDecimals)} XLM`,
      );
    }
  }
  if (account?.kind === 'exists' && account.trusted === false) {
    throw new DomainError(
      'payouts/destination-no-trustline',
      `the destination account has no trustline for ${payout.asset}`,
    );
  }
}
