import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { assert } from '../assert.ts';

const ivBytes = 12;
const tagBytes = 16;
export const encryptionKeyBytes = 32;

/** AES-256-GCM; the stored form is iv ‖ tag ‖ ciphertext, so tampering fails decryption. */
export function seal(key: Buffer, plaintext: Buffer): Buffer {
  assert(key.length === encryptionKeyBytes, 'keyring encryption key must be 32 bytes');
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
}

export function open(key: Buffer, sealed: Buffer): Buffer {
  const iv = sealed.subarray(0, ivBytes);
  const tag = sealed.subarray(ivBytes, ivBytes + tagBytes);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(sealed.subarray(ivBytes + tagBytes)), decipher.final()]);
}

/**
 * The key that encrypts signing secrets at rest: `SETTLEDESK_KEYRING_KEY` when configured (every
 * instance sharing a database must use the same one), otherwise a key generated once into the
 * data folder, which is what the zero-config single-machine start needs.
 */
export async function loadEncryptionKey(configured: string | undefined, file: string): Promise<Buffer> {
  if (configured !== undefined) return Buffer.from(configured, 'base64');
  if (!existsSync(file)) {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${randomBytes(encryptionKeyBytes).toString('base64')}\n`, {
      mode: 0o600,
      flag: 'wx',
    }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
  const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  assert(key.length === encryptionKeyBytes, `${file} must hold a 32-byte base64 key`);
  return key;
}
