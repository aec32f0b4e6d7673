import type { Executor } from '../db/types.ts';

export const keyStates = ['current', 'verify_only', 'retired'] as const;
export type KeyState = (typeof keyStates)[number];

export type SigningKeyRow = {
  kid: string;
  state: KeyState;
  secretSealed: Buffer;
  createdAt: Date;
  retiredAt: Date | null;
};

/** The channel every instance listens on; a change to the keyring notifies it. */
export const keyringChannel = 'settledesk_keyring';

export async function selectUsableKeys(db: Executor): Promise<SigningKeyRow[]> {
  return db<SigningKeyRow[]>`
    select kid, state, secret_sealed as "secretSealed", created_at as "createdAt", retired_at as "retiredAt"
    from signing_keys
    where state <> 'retired'
    order by created_at`;
}

export async function selectAllKeys(db: Executor): Promise<SigningKeyRow[]> {
  return db<SigningKeyRow[]>`
    select kid, state, secret_sealed as "secretSealed", created_at as "createdAt", retired_at as "retiredAt"
    from signing_keys
    order by created_at`;
}

/** Inserts a first current key unless one exists; the partial unique index settles races. */
export async function insertCurrentKeyIfNone(
  db: Executor,
  kid: string,
  secretSealed: Buffer,
): Promise<boolean> {
  const rows = await db`
    insert into signing_keys (kid, state, secret_sealed)
    select ${kid}::text, 'current', ${secretSealed}::bytea
    where not exists (select 1 from signing_keys where state = 'current')
    on conflict do nothing
    returning kid`;
  return rows.length === 1;
}

export async function notifyKeyringChanged(db: Executor): Promise<void> {
  await db`select pg_notify(${keyringChannel}, 'changed')`;
}
