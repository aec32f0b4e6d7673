import { appendAudit } from '../audit/audit.ts';
import type { Keyring } from '../platform/auth/keyring.ts';
import { newKeyId, newSigningSecret } from '../platform/auth/keyring.ts';
import {
  insertVerifyOnlyKey,
  notifyAccessChanged,
  type SigningKeyRow,
  selectAllKeys,
  selectKey,
  updatePromoteKey,
  updateRetireKey,
} from '../platform/auth/keyring-data.ts';
import { selectUser, updateReinstate, upsertSuspension } from '../platform/auth/users-data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';

export type Actor = { name: string; requestId?: string };
export type KeySummary = Omit<SigningKeyRow, 'secretSealed'>;

/**
 * Signing-key rotation without a restart: `add` creates a `verify_only` key (accepted everywhere
 * before anything is signed with it), `promote` makes it `current` and demotes the old one to
 * `verify_only` (its tokens keep working), `retire` refuses a `verify_only` key's tokens on every
 * instance. Each step commits with a NOTIFY, so every instance reloads at once.
 */
export async function listKeys(db: Executor): Promise<KeySummary[]> {
  return (await selectAllKeys(db)).map(({ secretSealed: _secret, ...summary }) => summary);
}

export async function addKey(sql: Sql, keyring: Keyring, actor: Actor): Promise<string> {
  const kid = newKeyId();
  await withTransaction(sql, async (tx) => {
    await insertVerifyOnlyKey(tx, kid, keyring.sealSecret(newSigningSecret()), keyring.currentKeyVersion);
    await audit(tx, actor, 'keys.added', kid, undefined, { state: 'verify_only' });
    await notifyAccessChanged(tx);
  });
  return kid;
}

export async function promoteKey(sql: Sql, kid: string, actor: Actor): Promise<void> {
  await withTransaction(sql, async (tx) => {
    const key = await existingKey(tx, kid);
    if (key.state === 'current') return;
    if (key.state === 'retired')
      throw new DomainError('keys/retired', `key ${kid} is retired and cannot be used again`);
    await updatePromoteKey(tx, kid);
    await audit(tx, actor, 'keys.promoted', kid, { state: key.state }, { state: 'current' });
    await notifyAccessChanged(tx);
  });
}

export async function retireKey(sql: Sql, kid: string, actor: Actor): Promise<void> {
  await withTransaction(sql, async (tx) => {
    const key = await existingKey(tx, kid);
    if (key.state === 'retired') return;
    if (key.state === 'current') {
      throw new DomainError('keys/current', `key ${kid} is current: promote another key before retiring it`);
    }
    await updateRetireKey(tx, kid);
    await audit(tx, actor, 'keys.retired', kid, { state: key.state }, { state: 'retired' });
    await notifyAccessChanged(tx);
  });
}

async function existingKey(db: Executor, kid: string): Promise<SigningKeyRow> {
  const key = await selectKey(db, kid);
  if (!key) throw new DomainError('keys/not-found', `no signing key ${kid}`);
  return key;
}

/** A suspended user's tokens are refused on every instance as soon as the NOTIFY arrives. */
export async function suspendUser(sql: Sql, name: string, actor: Actor, reason: string): Promise<void> {
  await withTransaction(sql, async (tx) => {
    const before = await selectUser(tx, name);
    if (before?.suspendedAt) return;
    await upsertSuspension(tx, name, actor.name, reason);
    await appendAudit(tx, {
      actor: actor.name,
      action: 'users.suspended',
      subjectType: 'user',
      subjectId: name,
      before: { suspended: false },
      after: { suspended: true, reason },
      requestId: actor.requestId,
    });
    await notifyAccessChanged(tx);
  });
}

export async function reinstateUser(sql: Sql, name: string, actor: Actor, reason: string): Promise<void> {
  await withTransaction(sql, async (tx) => {
    if ((await updateReinstate(tx, name)) === 0) return;
    await appendAudit(tx, {
      actor: actor.name,
      action: 'users.reinstated',
      subjectType: 'user',
      subjectId: name,
      before: { suspended: true },
      after: { suspended: false, reason },
      requestId: actor.requestId,
    });
    await notifyAccessChanged(tx);
  });
}

async function audit(
  db: Executor,
  actor: Actor,
  action: string,
  kid: string,
  before: unknown,
  after: unknown,
): Promise<void> {
  await appendAudit(db, {
    actor: actor.name,
    action,
    subjectType: 'signing_key',
    subjectId: kid,
    before,
    after,
    requestId: actor.requestId,
  });
}
