import { randomBytes, randomUUID } from 'node:crypto';
import { assert } from '../assert.ts';
import type { Sql } from '../db/types.ts';
import { open, seal } from './crypto.ts';
import {
  insertCurrentKeyIfNone,
  type KeyState,
  notifyAccessChanged,
  selectUsableKeys,
} from './keyring-data.ts';

const signingSecretBytes = 32;

type LoadedKey = { kid: string; state: KeyState; secret: Uint8Array };

/**
 * The in-memory view of the signing keys in the database. Verification accepts `current` and
 * `verify_only` keys; signing uses the one `current` key. Retired keys are not loaded at all.
 */
export class Keyring {
  #keys = new Map<string, LoadedKey>();
  #currentKid: string | undefined;
  readonly #encryptionKey: Buffer;

  constructor(encryptionKey: Buffer) {
    this.#encryptionKey = encryptionKey;
  }

  async reload(sql: Sql): Promise<void> {
    const rows = await selectUsableKeys(sql);
    const keys = new Map<string, LoadedKey>();
    let currentKid: string | undefined;
    for (const row of rows) {
      keys.set(row.kid, {
        kid: row.kid,
        state: row.state,
        secret: open(this.#encryptionKey, row.secretSealed),
      });
      if (row.state === 'current') currentKid = row.kid;
    }
    this.#keys = keys;
    this.#currentKid = currentKid;
  }

  signingKey(): { kid: string; secret: Uint8Array } {
    assert(this.#currentKid !== undefined, 'keyring has no current signing key');
    const key = this.#keys.get(this.#currentKid);
    assert(key !== undefined, 'current signing key not loaded');
    return { kid: key.kid, secret: key.secret };
  }

  verificationKey(kid: string): Uint8Array | undefined {
    return this.#keys.get(kid)?.secret;
  }

  sealSecret(secret: Uint8Array): Buffer {
    return seal(this.#encryptionKey, Buffer.from(secret));
  }
}

export function newKeyId(): string {
  return `k_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
}

export function newSigningSecret(): Buffer {
  return randomBytes(signingSecretBytes);
}

/** A fresh installation gets its first signing key automatically; later keys are added by hand. */
export async function ensureCurrentKey(sql: Sql, keyring: Keyring): Promise<void> {
  const inserted = await insertCurrentKeyIfNone(sql, newKeyId(), keyring.sealSecret(newSigningSecret()));
  if (inserted) await notifyAccessChanged(sql);
  await keyring.reload(sql);
}
