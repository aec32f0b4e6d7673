import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { assert } from '../assert.ts';
import type { Sql } from '../db/types.ts';
import { OperatingError } from '../errors.ts';
import { open, seal } from './crypto.ts';
import {
  insertCurrentKeyIfNone,
  type KeyState,
  notifyAccessChanged,
  selectUsableKeys,
} from './keyring-data.ts';

const signingSecretBytes = 32;

type LoadedKey = { kid: string; state: KeyState; secret: Uint8Array };

/** A keyring encryption key's version: a short fingerprint, so the key itself is never stored. */
export function keyVersion(encryptionKey: Buffer): string {
  return `kv_${createHash('sha256').update(encryptionKey).digest('hex').slice(0, 16)}`;
}

/**
 * The in-memory view of the signing keys in the database. Verification accepts `current` and
 * `verify_only` keys; signing uses the one `current` key. Retired keys are not loaded at all.
 *
 * Secrets at rest are sealed with the current encryption key; previous encryption keys (while a
 * rotation re-seals, see the `keyring_reencrypt` job) still open what they sealed.
 */
export class Keyring {
  #keys = new Map<string, LoadedKey>();
  #currentKid: string | undefined;
  readonly #encryptionKey: Buffer;
  readonly #encryptionKeys: ReadonlyMap<string, Buffer>;
  readonly currentKeyVersion: string;

  constructor(encryptionKey: Buffer, previousEncryptionKeys: readonly Buffer[] = []) {
    this.#encryptionKey = encryptionKey;
    this.currentKeyVersion = keyVersion(encryptionKey);
    this.#encryptionKeys = new Map(
      [encryptionKey, ...previousEncryptionKeys].map((key) => [keyVersion(key), key] as const),
    );
  }

  async reload(sql: Sql): Promise<void> {
    const rows = await selectUsableKeys(sql);
    const keys = new Map<string, LoadedKey>();
    let currentKid: string | undefined;
    for (const row of rows) {
      keys.set(row.kid, {
        kid: row.kid,
        state: row.state,
        secret: this.openSecret(row.secretSealed, row.keyVersion),
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

  /**
   * Opens a secret sealed under the key `version` names; one sealed before versions existed
   * (`null`) is tried with every configured key, GCM refusing the wrong ones.
   */
  openSecret(sealed: Buffer, version: string | null): Buffer {
    if (version !== null) {
      const key = this.#encryptionKeys.get(version);
      if (key === undefined) {
        throw new OperatingError(
          `keyring encryption key ${version} is not configured: add it to SETTLEDESK_KEYRING_PREVIOUS_KEYS until \`keyring_reencrypt\` has re-sealed everything`,
        );
      }
      return open(key, sealed);
    }
    for (const key of this.#encryptionKeys.values()) {
      try {
        return open(key, sealed);
      } catch {
        // The next key, if any, may be the one that sealed it.
      }
    }
    throw new OperatingError(
      'no configured keyring encryption key opens a sealed secret: restore the previous key in SETTLEDESK_KEYRING_PREVIOUS_KEYS until `keyring_reencrypt` has re-sealed everything',
    );
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
  const inserted = await insertCurrentKeyIfNone(
    sql,
    newKeyId(),
    keyring.sealSecret(newSigningSecret()),
    keyring.currentKeyVersion,
  );
  if (inserted) await notifyAccessChanged(sql);
  await keyring.reload(sql);
}
