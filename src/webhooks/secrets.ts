import { hkdfSync } from 'node:crypto';
import { join } from 'node:path';
import { encryptionKeyBytes, loadEncryptionKey, open, seal } from '../platform/auth/crypto.ts';
import type { Config } from '../platform/config.ts';

/**
 * Endpoint secrets are encrypted at rest the way the JWT keyring's are (AES-256-GCM, iv ‖ tag ‖
 * ciphertext, src/platform/auth/crypto.ts), under a key derived from the same keyring key. No new
 * key to provision or share between instances, and the derivation (HKDF with its own label) keeps
 * the two uses apart: a sealed signing key can never be opened as an endpoint secret or the other
 * way round. We must be able to read the secret back (we sign with it), so a hash would not do.
 */

const derivationSalt = Buffer.from('settledesk', 'utf8');
const derivationInfo = Buffer.from('merchant webhook endpoint secrets v1', 'utf8');

export class EndpointSecretBox {
  readonly #key: Buffer;

  constructor(keyringKey: Buffer) {
    this.#key = Buffer.from(
      hkdfSync('sha256', keyringKey, derivationSalt, derivationInfo, encryptionKeyBytes),
    );
  }

  seal(secret: string): Buffer {
    return seal(this.#key, Buffer.from(secret, 'utf8'));
  }

  open(sealed: Buffer): string {
    return open(this.#key, sealed).toString('utf8');
  }
}

/**
 * The box for this installation, loaded once on first use: the keyring key from
 * `SETTLEDESK_KEYRING_KEY`, or the file the runtime generated it into (`runtime.ts` uses the
 * same path).
 */
export function endpointSecretBox(config: Config): () => Promise<EndpointSecretBox> {
  let box: Promise<EndpointSecretBox> | undefined;
  return () => {
    box ??= loadEncryptionKey(config.keyringKeyBase64, join(config.dataDir, 'keyring.key')).then(
      (key) => new EndpointSecretBox(key),
    );
    return box;
  };
}
