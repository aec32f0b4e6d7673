import { randomUUID } from 'node:crypto';
import { payloadHash } from '../approvals/canonical.ts';
import { appendAudit } from '../audit/audit.ts';
import { assertMoneyMovementAllowed } from '../controls/service.ts';
import { selectAccount, selectSystemAccount } from '../ledger/data.ts';
import { lockAccounts, postJournal } from '../ledger/service.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import { assert } from '../platform/assert.ts';
import type { Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { recordFindings } from '../reconciliation/findings.ts';
import { depositCreditedEvent, emitEvent } from '../webhooks/events.ts';
import { type DepositRow, insertDeposit, type SuspenseReason, selectDeposit } from './data.ts';

/**
 * Credits a deposit exactly once per (provider, reference): the reference is claimed first (a
 * unique index), so concurrent duplicates wait for the first and then see it. The same payload
 * again is a replay; another payload under the same reference is refused and credits nothing.
 */

export type DepositInput = {
  provider: string;
  reference: string;
  accountId: string;
  asset: string;
  amount: string;
  source: DepositRow['source'];
  /**
   * The intent the provider's reference was issued for. Its webhooks continue in `read_only`
   * (they complete a deposit the customer was already told to make); nothing else does.
   */
  intentId?: string;
};

/**
 * Where the money is while it is credited: money held by a provider (`deposit_clearing`), or
 * money in the hot wallet on chain (`settlement`, the ledger's mirror of it).
 */
function offsetOf(input: DepositInput): 'deposit_clearing' | 'settlement' {
  return input.source === 'webhook' ? 'deposit_clearing' : 'settlement';
}

/** `held`: kept in `deposit_suspense` for a person to attribute, credited to nobody. */
export type CreditOutcome = { kind: 'credited' | 'replay' | 'held'; deposit: DepositRow };

/** The fields as the provider sent them: a resent webhook is byte-for-byte the same payload. */
export function providerPayloadHash(
  input: Pick<DepositInput, 'reference' | 'accountId' | 'asset' | 'amount'>,
): string {
  return payloadHash({
    reference: input.reference,
    accountId: input.accountId,
    asset: input.asset,
    amount: input.amount,
  });
}

export async function creditDeposit(tx: Tx, input: DepositInput, requestId?: string): Promise<CreditOutcome> {
  const hash = providerPayloadHash(input);
  const seen = await selectDeposit(tx, input.provider, input.reference);
  if (seen) return replayOrMismatch(seen, hash);
  // Read unlocked first (an account's type and asset never change) to find the offset account to
  // lock with it: both are locked in one call, in the global order (lockAccounts).
  const [, account] = await Promise.all([
    input.intentId === undefined ? assertMoneyMovementAllowed(tx) : undefined,
    selectAccount(tx, input.accountId),
  ]);
  if (!account) throw new DomainError('ledger/account-not-found', `no account ${input.accountId}`);
  if (account.type !== 'customer' && account.type !== 'merchant') {
    throw new DomainError(
      'ledger/account-not-found',
      `account ${account.id} is not a customer or merchant account`,
    );
  }
  if (account.asset !== input.asset) {
    throw new DomainError('ledger/asset-mismatch', `the account holds ${account.asset}, not ${input.asset}`);
  }
  // Refused before any lock, so that a caller parking the money in suspense instead (the deposit
  // watcher) locks its accounts in the global order; the posting checks the locked row again.
  if (account.status !== 'active') {
    throw new DomainError('ledger/account-closed', `account ${account.id} is closed`, {
      accountId: account.id,
    });
  }
  const amountMinor = parsePositiveAmount(input.amount, account.precision);
  const offset = await selectSystemAccount(tx, offsetOf(input), account.asset);
  assert(offset, `no ${offsetOf(input)} account for ${account.asset}`);
  const locked = await lockAccounts(tx, [account.id, offset.id]);
  const deposit = {
    id: randomUUID(),
    provider: input.provider,
    reference: input.reference,
    payloadHash: hash,
    accountId: account.id,
    asset: account.asset,
    amountMinor,
    source: input.source,
  };
  const journalId = randomUUID();
  if ((await insertDeposit(tx, { ...deposit, journalId, intentId: input.intentId })) === undefined) {
    // A concurrent duplicate claimed the reference first and has committed.
    const existing = await selectDeposit(tx, input.provider, input.reference);
    assert(existing, 'a claimed deposit reference has no row');
    return replayOrMismatch(existing, hash);
  }
  await postJournal(
    tx,
    {
      journalId,
      kind: 'deposit',
      entries: [
        { accountId: offset.id, amountMinor: -amountMinor },
        { accountId: account.id, amountMinor },
      ],
      reference: `${input.provider}:${input.reference}`,
      requestId,
    },
    locked,
  );
  await auditDeposit(tx, 'deposit.credited', deposit, journalId, requestId);
  await emitEvent(tx, depositCreditedEvent({ ...deposit, precision: account.precision }));
  return { kind: 'credited', deposit: { ...deposit, createdAt: new Date() } };
}

export function replayOrMismatch(existing: DepositRow, hash: string): CreditOutcome {
  if (existing.payloadHash !== hash) {
    // The deposit id lets an operator find the reference without a log line quoting it.
    throw new DomainError(
      'webhook/reference-mismatch',
      `reference ${existing.reference} was received with another payload`,
      { depositId: existing.id },
    );
  }
  return { kind: 'replay', deposit: existing };
}

/**
 * On-chain money that no account claims (unknown memo, no memo, another asset) is kept in
 * `deposit_suspense` for a person to attribute, under the same once-per-reference rule.
 */
export async function parkInSuspense(
  tx: Tx,
  input: { provider: string; reference: string; asset: string; amountMinor: bigint; reason: SuspenseReason },
): Promise<CreditOutcome> {
  const hash = payloadHash({
    reference: input.reference,
    asset: input.asset,
    amountMinor: input.amountMinor.toString(),
  });
  return holdInSuspense(tx, { ...input, source: 'chain', payloadHash: hash, actor: 'deposit-watcher' });
}

export type SuspenseInput = {
  provider: string;
  reference: string;
  asset: string;
  amountMinor: bigint;
  source: 'webhook' | 'chain';
  payloadHash: string;
  reason: SuspenseReason;
  /** Who sent it: `provider:<name>` or the watcher. */
  actor: string;
  intentId?: string;
  /** What the sender named and the intent expected, for the person who attributes the money. */
  claimed?: Record<string, unknown>;
  requestId?: string;
};

/**
 * Holds money in `deposit_suspense` (offset: the provider's clearing account for a webhook, the
 * hot wallet's mirror for a chain payment) with its audit row, and for a webhook a
 * `deposit_mismatch` finding, in the caller's transaction: a person attributes it with an
 * adjustment.
 */
export async function holdInSuspense(tx: Tx, input: SuspenseInput): Promise<CreditOutcome> {
  const seen = await selectDeposit(tx, input.provider, input.reference);
  if (seen) return replayOrMismatch(seen, input.payloadHash);
  const offsetType = input.source === 'webhook' ? 'deposit_clearing' : 'settlement';
  const [suspense, offset] = await Promise.all([
    selectSystemAccount(tx, 'deposit_suspense', input.asset),
    selectSystemAccount(tx, offsetType, input.asset),
  ]);
  assert(suspense && offset, `no suspense or ${offsetType} account for ${input.asset}`);
  const deposit = {
    id: randomUUID(),
    provider: input.provider,
    reference: input.reference,
    payloadHash: input.payloadHash,
    accountId: suspense.id,
    asset: input.asset,
    amountMinor: input.amountMinor,
    source: input.source,
  };
  const journalId = randomUUID();
  const row = { ...deposit, journalId, intentId: input.intentId, suspenseReason: input.reason };
  if ((await insertDeposit(tx, row)) === undefined) {
    const existing = await selectDeposit(tx, input.provider, input.reference);
    assert(existing, 'a claimed deposit reference has no row');
    return replayOrMismatch(existing, input.payloadHash);
  }
  await postJournal(tx, {
    journalId,
    kind: 'deposit_suspense',
    entries: [
      { accountId: offset.id, amountMinor: -input.amountMinor },
      { accountId: suspense.id, amountMinor: input.amountMinor },
    ],
    reference: `${input.provider}:${input.reference}`,
    requestId: input.requestId,
  });
  const held = {
    depositId: deposit.id,
    provider: input.provider,
    reference: input.reference,
    source: input.source,
    asset: input.asset,
    amountMinor: input.amountMinor.toString(),
    reason: input.reason,
    intentId: input.intentId ?? null,
    ...input.claimed,
  };
  await appendAudit(tx, {
    actor: input.actor,
    action: 'deposit.suspense',
    subjectType: 'deposit',
    subjectId: deposit.id,
    after: held,
    requestId: input.requestId,
  });
  // A provider payload that disagrees with what we issued may be a leaked secret at work: a
  // finding. A chain payment without a usable memo is a customer's slip, counted by the watcher.
  if (input.source === 'webhook') {
    await recordFindings(tx, [
      {
        kind: 'deposit_mismatch',
        subject: deposit.id,
        evidence: { ...held, suspenseReason: input.reason, reason: 'held_in_suspense' },
      },
    ]);
  }
  return { kind: 'held', deposit: { ...deposit, createdAt: new Date() } };
}

/** The audit row of a deposit posted to the ledger; its actor is where it came from. */
async function auditDeposit(
  tx: Tx,
  action: 'deposit.credited',
  deposit: Omit<DepositRow, 'createdAt'>,
  journalId: string,
  requestId?: string,
): Promise<void> {
  await appendAudit(tx, {
    actor: `${deposit.source}:${deposit.provider}`,
    action,
    subjectType: 'deposit',
    subjectId: deposit.id,
    after: {
      provider: deposit.provider,
      reference: deposit.reference,
      accountId: deposit.accountId,
      asset: deposit.asset,
      amountMinor: deposit.amountMinor.toString(),
      source: deposit.source,
      journalId,
    },
    requestId,
  });
}
