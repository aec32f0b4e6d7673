import { createHash, randomUUID } from 'node:crypto';
import { Account, MuxedAccount } from '@stellar/stellar-sdk';
import { appendAudit } from '../audit/audit.ts';
import { getAccount } from '../ledger/service.ts';
import { parsePositiveAmount } from '../ledger/transfers.ts';
import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { type ProviderRow, selectProvider } from './data.ts';
import {
  insertIntent,
  type Routing,
  selectPreviousRouting,
  selectRouting,
  updateRouting,
} from './routing-data.ts';
import { ensureMemo } from './watcher-data.ts';

/**
 * Deposit intents: how a customer pays in. The provider is the one asked for, or the routing's:
 * a cohort (a stable share of accounts, by a hash of the account id) goes to the cohort provider,
 * everyone else to the default. A provider in `read_only` or `disabled` takes no new intents.
 */

export type Intent = {
  id: string;
  accountId: string;
  provider: string;
  /** On the Stellar provider: pay this address with this id memo, or the muxed address alone. */
  stellar?: { address: string; memo: { type: 'id'; value: string }; muxedAddress: string };
  /** At an external provider: quote this reference. */
  reference?: string;
  /** The amount the intent fixed (external providers): a webhook with another amount is held. */
  amount?: string;
};

/** 0-99, the same for an account every time: a customer stays with one provider during a rollout. */
export function cohortOf(accountId: string): number {
  return createHash('sha256').update(accountId).digest().readUInt32BE(0) % 100;
}

export function routeFor(routing: Routing, accountId: string): string {
  if (routing.cohortProvider !== null && cohortOf(accountId) < routing.cohortPercent)
    return routing.cohortProvider;
  return routing.defaultProvider;
}

export async function createIntent(
  sql: Sql,
  input: {
    accountId: string;
    provider?: string;
    amount?: string;
    actor: string;
    hotWallet: () => Promise<string>;
  },
): Promise<Intent> {
  const account = await getAccount(sql, input.accountId);
  if (account.type !== 'customer' && account.type !== 'merchant') {
    throw new DomainError(
      'ledger/account-not-found',
      `account ${account.id} is not a customer or merchant account`,
    );
  }
  const name = input.provider ?? routeFor(await selectRouting(sql), account.id);
  const provider = await selectProvider(sql, name);
  if (!provider) throw new DomainError('webhook/unknown-provider', `no deposit provider ${name}`);
  if (provider.mode !== 'standard') {
    throw new DomainError('deposits/provider-not-accepting', `provider ${provider.name} is ${provider.mode}`);
  }
  const amountMinor =
    input.amount === undefined ? null : parsePositiveAmount(input.amount, account.precision);
  const id = randomUUID();
  if (provider.kind === 'stellar') {
    // The watcher attributes chain payments by memo alone: a fixed amount would not be checked.
    if (amountMinor !== null)
      throw new DomainError('request/validation', 'a fixed amount is only taken for external providers');
    return stellarIntent(sql, {
      id,
      accountId: account.id,
      provider,
      actor: input.actor,
      hotWallet: await input.hotWallet(),
    });
  }
  const reference = `${provider.name}-${id}`;
  await insertIntent(sql, {
    id,
    accountId: account.id,
    provider: provider.name,
    memoId: null,
    reference,
    amountMinor,
    createdBy: input.actor,
  });
  return {
    id,
    accountId: account.id,
    provider: provider.name,
    reference,
    ...(amountMinor !== null && { amount: formatAmount(amountMinor, account.precision) }),
  };
}

async function stellarIntent(
  sql: Sql,
  input: { id: string; accountId: string; provider: ProviderRow; actor: string; hotWallet: string },
): Promise<Intent> {
  const memo = await ensureMemo(sql, input.accountId);
  await insertIntent(sql, {
    id: input.id,
    accountId: input.accountId,
    provider: input.provider.name,
    memoId: memo,
    reference: null,
    amountMinor: null,
    createdBy: input.actor,
  });
  const muxedAddress = new MuxedAccount(new Account(input.hotWallet, '0'), memo.toString()).accountId();
  return {
    id: input.id,
    accountId: input.accountId,
    provider: input.provider.name,
    stellar: { address: input.hotWallet, memo: { type: 'id', value: memo.toString() }, muxedAddress },
  };
}

/** Sets the routing; audited, kept in the history. */
export async function setRouting(
  sql: Sql,
  routing: Routing,
  actor: string,
  reason: string,
): Promise<Routing> {
  if (routing.cohortPercent < 0 || routing.cohortPercent > 100 || !Number.isInteger(routing.cohortPercent)) {
    throw new DomainError('request/validation', 'the cohort percentage is a whole number from 0 to 100');
  }
  const normalised =
    routing.cohortPercent === 0 || routing.cohortProvider === null
      ? { defaultProvider: routing.defaultProvider, cohortProvider: null, cohortPercent: 0 }
      : routing;
  return withTransaction(sql, async (tx) => {
    for (const name of [normalised.defaultProvider, normalised.cohortProvider]) {
      if (name !== null && !(await selectProvider(tx, name)))
        throw new DomainError('webhook/unknown-provider', `no deposit provider ${name}`);
    }
    const before = await selectRouting(tx, { lock: true });
    await updateRouting(tx, normalised, actor, reason);
    await appendAudit(tx, {
      actor,
      action: 'deposits.routing',
      subjectType: 'deposit_routing',
      subjectId: 'routing',
      before,
      after: { ...normalised, reason },
    });
    return normalised;
  });
}

/** Restores the routing in force before the current one: one command. */
export async function rollbackRouting(sql: Sql, actor: string, reason: string): Promise<Routing> {
  const previous = await selectPreviousRouting(sql);
  if (!previous) throw new DomainError('deposits/no-previous-routing', 'there is no earlier routing');
  return setRouting(sql, previous, actor, `rollback: ${reason}`);
}
