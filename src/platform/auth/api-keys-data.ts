import { assert } from '../assert.ts';
import type { Executor } from '../db/types.ts';

export const apiKeyScopes = ['service', 'viewer'] as const;
export type ApiKeyScope = (typeof apiKeyScopes)[number];

export type ApiKeyRow = {
  id: string;
  name: string;
  scope: ApiKeyScope;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  revokedBy: string | null;
  revokedReason: string | null;
};

/** What authentication needs: the digest to compare and when the key stops working. */
export type UsableApiKeyRow = {
  id: string;
  name: string;
  scope: ApiKeyScope;
  secretHash: Buffer;
  expiresAt: Date;
};

const columns = (db: Executor) => db`
  id, name, scope, created_by as "createdBy", created_at as "createdAt", expires_at as "expiresAt",
  last_used_at as "lastUsedAt", revoked_at as "revokedAt", revoked_by as "revokedBy",
  revoked_reason as "revokedReason"`;

export async function insertApiKey(
  db: Executor,
  key: {
    id: string;
    name: string;
    scope: ApiKeyScope;
    secretHash: Buffer;
    createdBy: string;
    expiresAt: Date;
  },
): Promise<ApiKeyRow> {
  const [row] = await db<ApiKeyRow[]>`
    insert into api_keys (id, name, scope, secret_hash, created_by, expires_at)
    values (${key.id}::uuid, ${key.name}::text, ${key.scope}::text, ${key.secretHash}::bytea,
            ${key.createdBy}::text, ${key.expiresAt}::timestamptz)
    returning ${columns(db)}`;
  assert(row, 'insert into api_keys returned no row');
  return row;
}

/** Keys not revoked and not yet expired: what every instance holds in memory. */
export async function selectUsableApiKeys(db: Executor): Promise<UsableApiKeyRow[]> {
  return db<UsableApiKeyRow[]>`
    select id, name, scope, secret_hash as "secretHash", expires_at as "expiresAt"
    from api_keys
    where revoked_at is null and expires_at > now()`;
}

export async function countUsableApiKeys(db: Executor): Promise<number> {
  const [row] = await db<{ count: number }[]>`
    select count(*)::int as count from api_keys where revoked_at is null and expires_at > now()`;
  return row?.count ?? 0;
}

export async function selectApiKeyForUpdate(db: Executor, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db<ApiKeyRow[]>`select ${columns(db)} from api_keys where id = ${id}::uuid for update`;
  return row;
}

export async function selectApiKeysPage(
  db: Executor,
  page: { after: { createdAt: Date; id: string } | undefined; limit: number },
): Promise<ApiKeyRow[]> {
  return db<ApiKeyRow[]>`
    select ${columns(db)} from api_keys
    where ${page.after?.createdAt ?? null}::timestamptz is null
       or (created_at, id) < (${page.after?.createdAt ?? null}::timestamptz, ${page.after?.id ?? null}::uuid)
    order by created_at desc, id desc
    limit ${page.limit}::int`;
}

export async function updateRevokeApiKey(
  db: Executor,
  id: string,
  by: string,
  reason: string,
): Promise<number> {
  const result = await db`
    update api_keys set revoked_at = now(), revoked_by = ${by}::text, revoked_reason = ${reason}::text
    where id = ${id}::uuid and revoked_at is null`;
  return result.count;
}

/** Guarded in the statement too, so instances racing on one key write once per interval. */
export async function updateApiKeyLastUsed(db: Executor, id: string, precisionMs: number): Promise<void> {
  await db`
    update api_keys set last_used_at = now()
    where id = ${id}::uuid
      and (last_used_at is null or last_used_at < now() - make_interval(secs => ${precisionMs / 1_000}::float8))`;
}

/** Serialises creations for the transaction, so two at once cannot both pass the usable-key count. */
export async function lockApiKeyCreation(db: Executor): Promise<void> {
  await db`select pg_advisory_xact_lock(hashtext(${'api_keys.create'}::text))`;
}
