import { assertMoneyMovementAllowed } from '../controls/service.ts';
import { selectAssetPrecision } from '../ledger/data.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import type { Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import {
  type CreditOutcome,
  creditDeposit,
  holdInSuspense,
  providerPayloadHash,
  replayOrMismatch,
} from './credit.ts';
import { type SuspenseReason, selectDeposit } from './data.ts';
import { type IssuedIntent, selectIntentByReference } from './routing-data.ts';
import type { ProviderPayload } from './webhooks.ts';

/**
 * A provider deposit credits the account of the intent its reference was issued for, in that
 * account's asset, never the account the payload names: a valid signature proves the provider
 * sent it, not that the provider (or whoever holds its secret) chose the right customer. A
 * payload that disagrees with its intent, or a reference settledesk never issued, is held in
 * `deposit_suspense` (with an audit row and a finding) for a person to attribute.
 *
 * The global `read_only` mode defers (503) only webhooks of references never issued: those of an
 * issued intent complete a deposit the customer was already told to make, so they continue.
 */
export async function creditProviderDeposit(
  tx: Tx,
  input: ProviderPayload & { provider: string },
  requestId: string | undefined,
): Promise<CreditOutcome> {
  const hash = providerPayloadHash(input);
  const seen = await selectDeposit(tx, input.provider, input.reference);
  // A resend is a replay, another payload a mismatch, whatever became of the first.
  if (seen) return replayOrMismatch(seen, hash);
  const intent = await selectIntentByReference(tx, input.provider, input.reference);
  if (intent === undefined) {
    await assertMoneyMovementAllowed(tx);
    const precision = await selectAssetPrecision(tx, input.asset);
    if (precision === undefined) {
      throw new DomainError('ledger/asset-mismatch', `asset ${input.asset} is not enabled`);
    }
    const amountMinor = parsePositiveAmount(input.amount, precision);
    return hold(tx, input, { reason: 'unknown_reference', hash, amountMinor, requestId });
  }
  const disagreement = await disagreementOf(tx, intent, input);
  if (disagreement !== undefined) {
    return hold(tx, input, { ...disagreement, hash, requestId, intent });
  }
  return creditDeposit(
    tx,
    { ...input, accountId: intent.accountId, source: 'webhook', intentId: intent.id },
    requestId,
  );
}

type Disagreement = { reason: SuspenseReason; amountMinor: bigint };

/** The first field of the payload that differs from its intent, with the amount to hold. */
async function disagreementOf(
  tx: Tx,
  intent: IssuedIntent,
  input: ProviderPayload,
): Promise<Disagreement | undefined> {
  if (input.asset !== intent.asset) {
    const precision = await selectAssetPrecision(tx, input.asset);
    if (precision === undefined) {
      throw new DomainError('ledger/asset-mismatch', `asset ${input.asset} is not enabled`);
    }
    return { reason: 'asset_differs', amountMinor: parsePositiveAmount(input.amount, precision) };
  }
  const amountMinor = parsePositiveAmount(input.amount, intent.precision);
  if (input.accountId !== intent.accountId) return { reason: 'account_differs', amountMinor };
  if (intent.amountMinor !== null && intent.amountMinor !== amountMinor)
    return { reason: 'amount_differs', amountMinor };
  return undefined;
}

async function hold(
  tx: Tx,
  input: ProviderPayload & { provider: string },
  held: Disagreement & { hash: string; requestId: string | undefined; intent?: IssuedIntent },
): Promise<CreditOutcome> {
  return holdInSuspense(tx, {
    provider: input.provider,
    reference: input.reference,
    asset: input.asset,
    amountMinor: held.amountMinor,
    source: 'webhook',
    payloadHash: held.hash,
    reason: held.reason,
    actor: `provider:${input.provider}`,
    intentId: held.intent?.id,
    claimed: {
      namedAccountId: input.accountId,
      namedAmount: input.amount,
      ...(held.intent && {
        intentAccountId: held.intent.accountId,
        intentAsset: held.intent.asset,
        intentAmountMinor: held.intent.amountMinor?.toString() ?? null,
      }),
    },
    requestId: held.requestId,
  });
}
