import type { Executor } from '../platform/db/types.ts';

export const providerSecretStates = ['current', 'verify_only', 'retired'] as const;
export type ProviderSecretState = (typeof providerSecretStates)[number];

export type ProviderSecretRow = {
  id: string;
  provider: string;
  state: ProviderSecretState;
  secretSealed: Buffer;
  keyVersion: string;
  createdAt: Date;
  createdBy: string;
  promotedAt: Date | null;
  retiredAt: Date | null;
};

/** Every secret of every provider, retired ones included: a provider with any row ignores config. */
export async function selectAllProviderSecrets(db: Executor): Promise<ProviderSecretRow[]> {
  return db<ProviderSecretRow[]>`
    select id, provider, state, secret_sealed as "secretSealed", key_version as "keyVersion",
      created_at as "createdAt", created_by as "createdBy", promoted_at as "promotedAt", retired_at as "retiredAt"
    from provider_webhook_secrets order by provider, created_at, id`;
}

export async function selectProviderSecrets(db: Executor, provider: string): Promise<ProviderSecretRow[]> {
  return db<ProviderSecretRow[]>`
    select id, provider, state, secret_sealed as "secretSealed", key_version as "keyVersion",
      created_at as "createdAt", created_by as "createdBy", promoted_at as "promotedAt", retired_at as "retiredAt"
    from provider_webhook_secrets
    where provider = ${provider}::text
    order by created_at, id`;
}

export async function selectProviderSecretForUpdate(
  db: Executor,
  id: string,
): Promise<ProviderSecretRow | undefined> {
  const [row] = await db<ProviderSecretRow[]>`
    select id, provider, state, secret_sealed as "secretSealed", key_version as "keyVersion",
      created_at as "createdAt", created_by as "createdBy", promoted_at as "promotedAt", retired_at as "retiredAt"
    from provider_webhook_secrets where id = ${id}::text for update`;
  return row;
}

/** Serialises secret changes of one provider, so the active count and the one current hold. */
export async function lockProviderSecrets(db: Executor, provider: string): Promise<void> {
  await db`select pg_advisory_xact_lock(hashtext('provider_webhook_secrets'), hashtext(${provider}::text))`;
}

/** `created_at` is the clock's, not the transaction's: an import and an add in one are ordered. */
export async function insertProviderSecret(
  db: Executor,
  row: {
    id: string;
    provider: string;
    state: 'current' | 'verify_only';
    secretSealed: Buffer;
    keyVersion: string;
    createdBy: string;
  },
): Promise<void> {
  await db`
    insert into provider_webhook_secrets
      (id, provider, state, secret_sealed, key_version, created_by, created_at, promoted_at)
    values (${row.id}::text, ${row.provider}::text, ${row.state}::text, ${row.secretSealed}::bytea,
      ${row.keyVersion}::text, ${row.createdBy}::text, clock_timestamp(),
      case when ${row.state}::text = 'current' then now() end)`;
}

/** Demotes the provider's current secret and promotes another in one statement. */
export async function updatePromoteProviderSecret(
  db: Executor,
  provider: string,
  id: string,
): Promise<number> {
  const result = await db`
    update provider_webhook_secrets
    set state = case when id = ${id}::text then 'current' else 'verify_only' end,
        promoted_at = case when id = ${id}::text then now() else promoted_at end
    where provider = ${provider}::text
      and ((id = ${id}::text and state = 'verify_only') or state = 'current')`;
  return result.count;
}

export async function updateRetireProviderSecret(db: Executor, id: string): Promise<number> {
  const result = await db`
    update provider_webhook_secrets set state = 'retired', retired_at = now()
    where id = ${id}::text and state = 'verify_only'`;
  return result.count;
}

/** Secrets sealed under another keyring key than `keyVersion`, retired ones included. */
export async function selectProviderSecretsSealedElsewhere(
  db: Executor,
  keyVersion: string,
  limit: number,
): Promise<ProviderSecretRow[]> {
  return db<ProviderSecretRow[]>`
    select id, provider, state, secret_sealed as "secretSealed", key_version as "keyVersion",
      created_at as "createdAt", created_by as "createdBy", promoted_at as "promotedAt", retired_at as "retiredAt"
    from provider_webhook_secrets
    where key_version <> ${keyVersion}::text
    order by id
    limit ${limit}::int
    for update skip locked`;
}

export async function updateProviderSecretSeal(
  db: Executor,
  id: string,
  secretSealed: Buffer,
  keyVersion: string,
): Promise<void> {
  await db`
    update provider_webhook_secrets set secret_sealed = ${secretSealed}::bytea, key_version = ${keyVersion}::text
    where id = ${id}::text`;
}

/** How many secrets each keyring key version sealed: the rotation is done when only one remains. */
export async function countSealsByKeyVersion(
  db: Executor,
): Promise<{ keyVersion: string | null; table: string; count: bigint }[]> {
  return db<{ keyVersion: string | null; table: string; count: bigint }[]>`
    select key_version as "keyVersion", 'signing_keys' as table, count(*)::int8 as count
    from signing_keys group by key_version
    union all
    select key_version, 'provider_webhook_secrets', count(*)::int8
    from provider_webhook_secrets group by key_version
    order by 2, 1`;
}
