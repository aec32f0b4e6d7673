import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { assert } from '../platform/assert.ts';
import { newApiKey } from '../platform/auth/api-keys.ts';
import {
  type ApiKeyRow,
  type ApiKeyScope,
  apiKeyScopes,
  countUsableApiKeys,
  insertApiKey,
  lockApiKeyCreation,
  selectApiKeyForUpdate,
  selectApiKeysPage,
  updateRevokeApiKey,
} from '../platform/auth/api-keys-data.ts';
import { notifyAccessChanged } from '../platform/auth/keyring-data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import type { Actor } from './service.ts';

/** Long-lived, not endless: a key is replaced at least this often. */
export const apiKeyExpiryDaysMax = 365;
export const apiKeyExpiryDaysDefault = 90;
/** Every instance holds the usable keys in memory: this bounds that set. */
export const apiKeysUsableMax = 1_000;
export const apiKeysPageMax = 200;
export const apiKeyNameLengthMax = 64;
export const revokeReasonLengthMax = 1_000;

export const apiKeyNamePattern = new RegExp(`^[a-z0-9][a-z0-9._-]{0,${apiKeyNameLengthMax - 1}}$`);

function invalid(field: string, message: string): DomainError {
  return new DomainError('request/validation', `${field} ${message}`, {
    errors: [{ field: `body.${field}`, message }],
  });
}

export type ApiKeyView = ReturnType<typeof apiKeyView>;

export function apiKeyView(row: ApiKeyRow) {
  return {
    id: row.id,
    name: row.name,
    scope: row.scope,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
    revokedBy: row.revokedBy,
    revokedReason: row.revokedReason,
  };
}

/**
 * Creates a key and returns it with its secret, which is shown this once and never stored: only
 * its SHA-256 is. Every instance accepts it once the NOTIFY sent on commit has been handled.
 */
export async function createApiKey(
  sql: Sql,
  input: { name: string; scope: ApiKeyScope; expiresInDays?: number | undefined },
  actor: Actor,
): Promise<ApiKeyView & { key: string }> {
  const days = input.expiresInDays ?? apiKeyExpiryDaysDefault;
  if (!Number.isInteger(days) || days < 1 || days > apiKeyExpiryDaysMax) {
    throw invalid('expiresInDays', `must be a whole number from 1 to ${apiKeyExpiryDaysMax}`);
  }
  if (!apiKeyNamePattern.test(input.name)) {
    throw invalid(
      'name',
      `must be 1 to ${apiKeyNameLengthMax} of a-z, 0-9, '.', '_', '-', starting with a letter or digit`,
    );
  }
  if (!(apiKeyScopes as readonly string[]).includes(input.scope)) {
    throw invalid('scope', `must be one of: ${apiKeyScopes.join(', ')}`);
  }
  const id = randomUUID();
  const { token, secretHash } = newApiKey(id);
  const row = await withTransaction(sql, async (tx) => {
    await lockApiKeyCreation(tx);
    if ((await countUsableApiKeys(tx)) >= apiKeysUsableMax) {
      throw new DomainError(
        'api-keys/too-many',
        `${apiKeysUsableMax} API keys are usable already: revoke unused ones first`,
      );
    }
    const expiresAt = new Date(Date.now() + days * 86_400_000);
    const created = await insertApiKey(tx, {
      id,
      name: input.name,
      scope: input.scope,
      secretHash,
      createdBy: actor.name,
      expiresAt,
    });
    await audit(tx, actor, 'api_keys.created', id, undefined, {
      name: created.name,
      scope: created.scope,
      expiresAt: created.expiresAt.toISOString(),
    });
    await notifyAccessChanged(tx);
    return created;
  });
  return { ...apiKeyView(row), key: token };
}

export async function listApiKeys(
  db: Executor,
  page: { after: { createdAt: Date; id: string } | undefined; limit: number },
): Promise<ApiKeyRow[]> {
  return selectApiKeysPage(db, page);
}

/** Refused on every instance as soon as the NOTIFY arrives; revoking twice changes nothing. */
export async function revokeApiKey(sql: Sql, id: string, actor: Actor, reason: string): Promise<ApiKeyView> {
  if (!isUuid(id)) throw new DomainError('api-keys/not-found', `no API key ${id}`);
  return withTransaction(sql, async (tx) => {
    const key = await selectApiKeyForUpdate(tx, id);
    if (!key) throw new DomainError('api-keys/not-found', `no API key ${id}`);
    if (key.revokedAt !== null) return apiKeyView(key);
    await updateRevokeApiKey(tx, id, actor.name, reason);
    await audit(tx, actor, 'api_keys.revoked', id, { revoked: false }, { revoked: true, reason });
    await notifyAccessChanged(tx);
    const revoked = await selectApiKeyForUpdate(tx, id);
    assert(revoked, `API key ${id} vanished while revoked`);
    return apiKeyView(revoked);
  });
}

async function audit(
  db: Executor,
  actor: Actor,
  action: string,
  id: string,
  before: unknown,
  after: unknown,
) {
  await appendAudit(db, {
    actor: actor.name,
    action,
    subjectType: 'api_key',
    subjectId: id,
    before,
    after,
    requestId: actor.requestId,
  });
}
