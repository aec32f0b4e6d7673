import { appendAudit } from '../audit/audit.ts';
import { assert } from '../platform/assert.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import {
  insertProvider,
  type ProviderMode,
  type ProviderRow,
  selectProvider,
  updateProviderMode,
} from './data.ts';

/** Deposit providers and their modes; every change is audited. */

export const providerNamePattern = /^[a-z][a-z0-9_]{0,39}$/;

export async function addProvider(sql: Sql, name: string, actor: string): Promise<ProviderRow> {
  if (!providerNamePattern.test(name)) {
    throw new DomainError(
      'request/validation',
      'a provider name is 1-40 characters of a-z, 0-9 and _, starting with a letter',
    );
  }
  return withTransaction(sql, async (tx) => {
    const row = await insertProvider(tx, name, actor);
    if (!row) {
      const existing = await selectProvider(tx, name);
      assert(existing, 'provider vanished');
      return existing;
    }
    await appendAudit(tx, {
      actor,
      action: 'provider.added',
      subjectType: 'deposit_provider',
      subjectId: name,
      after: row,
    });
    return row;
  });
}

export async function setProviderMode(
  sql: Sql,
  input: { name: string; mode: ProviderMode; actor: string; reason: string },
): Promise<ProviderRow> {
  return withTransaction(sql, async (tx) => {
    const before = await selectProvider(tx, input.name);
    if (!before) throw new DomainError('webhook/unknown-provider', `no deposit provider ${input.name}`);
    const after = await updateProviderMode(tx, input.name, input.mode, input.actor);
    assert(after, 'provider vanished');
    await appendAudit(tx, {
      actor: input.actor,
      action: 'provider.mode',
      subjectType: 'deposit_provider',
      subjectId: input.name,
      before,
      after: { ...after, reason: input.reason },
    });
    return after;
  });
}
