import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Sql } from '../db/types.ts';
import { DomainError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { type ApiKeyScope, selectUsableApiKeys, updateApiKeyLastUsed } from './api-keys-data.ts';
import type { Principal } from './roles.ts';

/**
 * API keys: `sdk_live_<32 hex: the key's id>_<43 base64url: 256 random bits>`. The fixed prefix
 * lets secret scanners (and our log redaction) recognise a leaked key; the id finds the stored
 * row; only SHA-256 of the whole key is stored, compared in constant time.
 */
export const apiKeyPrefix = 'sdk_live_';
/** The exact shape of a key, for secret scanners (docs/controls.md, "API keys"). */
export const apiKeyPattern = /^sdk_live_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;
const apiKeySecretBytes = 32;
/** The key id a principal authenticated by an API key carries instead of a signing key's. */
export const apiKeyKeyId = 'api-key';
/** A key's last use is written at most this often per key and instance. */
export const apiKeyLastUsedPrecisionMs = 60_000;

export function isApiKeyToken(token: string): boolean {
  return token.startsWith(apiKeyPrefix);
}

export function apiKeyDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** A new key for the row `id`: the caller stores its digest and shows the key once. */
export function newApiKey(id: string): { token: string; secretHash: Buffer } {
  const token = `${apiKeyPrefix}${id.replaceAll('-', '')}_${randomBytes(apiKeySecretBytes).toString('base64url')}`;
  return { token, secretHash: apiKeyDigest(token) };
}

function idOf(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

type UsableKey = { name: string; scope: ApiKeyScope; secretHash: Buffer; expiresAtMs: number };

const refused = () => new DomainError('auth/unauthenticated', 'the API key was refused');

/**
 * The usable (not revoked, not expired) keys of every instance, in memory: reloaded with signing
 * keys and suspensions by the access sync (LISTEN/NOTIFY plus the periodic reload), so a
 * revocation is refused on every instance as soon as the NOTIFY arrives and no request pays a
 * database round trip to authenticate.
 */
export class ApiKeys {
  #keys = new Map<string, UsableKey>();
  /** When this instance last wrote each key's last use. */
  readonly #lastWritten = new Map<string, number>();

  readonly #sql: Sql;
  readonly #logger: Logger;

  constructor(sql: Sql, logger: Logger) {
    this.#sql = sql;
    this.#logger = logger;
  }

  async reload(sql: Sql): Promise<void> {
    const rows = await selectUsableApiKeys(sql);
    this.#keys = new Map(
      rows.map((row) => [
        row.id,
        {
          name: row.name,
          scope: row.scope,
          secretHash: row.secretHash,
          expiresAtMs: row.expiresAt.getTime(),
        },
      ]),
    );
    for (const id of this.#lastWritten.keys()) if (!this.#keys.has(id)) this.#lastWritten.delete(id);
  }

  async authenticate(token: string): Promise<Principal> {
    const match = apiKeyPattern.exec(token);
    const id = match?.[1] === undefined ? undefined : idOf(match[1]);
    const key = id === undefined ? undefined : this.#keys.get(id);
    if (id === undefined || key === undefined) throw refused();
    if (!timingSafeEqual(apiKeyDigest(token), key.secretHash)) throw refused();
    if (key.expiresAtMs <= Date.now()) throw refused();
    await this.#touch(id);
    return { subject: `api-key:${key.name}`, role: key.scope, keyId: apiKeyKeyId, tokenId: id };
  }

  /** Bounded: one UPDATE per key per minute per instance, not one per request. */
  async #touch(id: string): Promise<void> {
    const now = Date.now();
    if (now - (this.#lastWritten.get(id) ?? 0) < apiKeyLastUsedPrecisionMs) return;
    this.#lastWritten.set(id, now);
    try {
      await updateApiKeyLastUsed(this.#sql, id, apiKeyLastUsedPrecisionMs);
    } catch (error) {
      // Last use is information, not a gate: the request goes on, the next one retries the write.
      this.#lastWritten.delete(id);
      this.#logger.warn({ err: error, apiKeyId: id }, 'could not record the API key last use');
    }
  }
}
