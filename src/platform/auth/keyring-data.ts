import type { Executor } from '../db/types.ts';

export const keyStates = ['current', 'verify_only', 'retired'] as const;
export type KeyState = (typeof keyStates)[number];

export type SigningKeyRow = {
  kid: string;
  state: KeyState;
  secretSealed: Buffer;
  /** The keyring encryption key that sealed it; null when sealed before key versions existed. */
  keyVersion: string | null;
  createdAt: Date;
  retiredAt: Date | null;
};

/** The channel every instance listens on; a change to signing keys or users notifies it. */
export const accessChannel = 'settledesk_access';

export async function selectUsableKeys(db: Executor): Promise<SigningKeyRow[]> {
  return db<SigningKeyRow[]>`
    select kid, state, secret_sealed as "secretSealed", key_version as "keyVersion", created_at as "createdAt", retired_at as "retiredAt"
    from signing_keys
    where state <> 'retired'
    order by created_at`;
}

export async function selectAllKeys(db: Executor): Promise<SigningKeyRow[]> {
  return db<SigningKeyRow[]>`
    select kid, state, secret_sealed as "secretSealed", key_version as "keyVersion", created_at as "createdAt", retired_at as "retiredAt"
    from signing_keys
    order by created_at`;
}

/** Inserts a first current key unless one exists; the partial unique index settles races. */
export async function insertCurrentKeyIfNone(
  db: Executor,
  kid: string,
  secretSealed: Buffer,
  keyVersion: string,
): Promise<boolean> {
  const rows = await db`
    insert into signing_keys (kid, state, secret_sealed, key_version)
    select ${kid}::text, 'current', ${secretSealed}::bytea, ${keyVersion}::text
    where not exists (select 1 from signing_keys where state = 'current')
    on conflict do nothing
    returning kid`;
  return rows.length === 1;
}

export async function notifyAccessChanged(db: Executor): Promise<void> {
  await db`select pg_notify(${accessChannel}, 'changed')`;
}

export async function selectKey(db: Executor, kid: string): Promise<SigningKeyRow | undefined> {
  const [row] = await db<SigningKeyRow[]>`
    select kid, state, secret_sealed as "secretSealed", key_version as "keyVersion", created_at as "createdAt", retired_at as "retiredAt"
    from signing_keys
    where kid = ${kid}::text
    for update`;
  return row;
}

export async function insertVerifyOnlyKey(
  db: Executor,
  kid: string,
  secretSealed: Buffer,
  keyVersion: string,
): Promise<void> {
  await db`
    insert into signing_keys (kid, state, secret_sealed, key_version)
    values (${kid}::text, 'verify_only', ${secretSealed}::bytea, ${keyVersion}::text)`;
}

/** Demotes the current key and promotes another in one statement, so exactly one stays current. */
export async function updatePromoteKey(db: Executor, kid: string): Promise<number> {
  const result = await db`
    update signing_keys
    set state = case when kid = ${kid}::text then 'current' else 'verify_only' end,
        promoted_at = case when kid = ${kid}::text then now() else promoted_at end
    where (kid = ${kid}::text and state = 'verify_only') or state = 'current'`;
  return result.count;
}

export async function updateRetireKey(db: Executor, kid: string): Promise<number> {
  const result = await db`
    update signing_keys set state = 'retired', retired_at = now()
    where kid = ${kid}::text and state = 'verify_only'`;
  return result.count;
}

/** Signing keys sealed under another keyring key than `keyVersion` (or before versions existed). */
export async function selectKeysSealedElsewhere(
  db: Executor,
  keyVersion: string,
  limit: number,
): Promise<SigningKeyRow[]> {
  return db<SigningKeyRow[]>`
    select kid, state, secret_sealed as "secretSealed", key_version as "keyVersion", created_at as "createdAt", retired_at as "retiredAt"
    from signing_keys
    where key_version is distinct from ${keyVersion}::text
    order by kid
    limit ${limit}::int
    for update skip locked`;
}

export async function updateKeySeal(
  db: Executor,
  kid: string,
  secretSealed: Buffer,
  keyVersion: string,
): Promise<void> {
  await db`
    update signing_keys set secret_sealed = ${secretSealed}::bytea, key_version = ${keyVersion}::text
    where kid = ${kid}::text`;
}
