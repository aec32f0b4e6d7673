import { createHmac, randomBytes } from 'node:crypto';
import { assert } from '../platform/assert.ts';

/**
 * Signatures per the Standard Webhooks specification, so that a merchant can verify our
 * deliveries with any of its libraries: `webhook-signature: v1,<base64 HMAC-SHA256>` over
 * `${webhook-id}.${webhook-timestamp}.${body}`, keyed by the bytes of the endpoint's secret.
 */

export const secretPrefix = 'whsec_';
/** The specification asks for 24 to 64 bytes; 32 match the strength of HMAC-SHA256 (256 bits). */
export const secretBytes = 32;
const secretPattern = /^whsec_[A-Za-z0-9+/]+={0,2}$/;

export const signatureVersion = 'v1';

/** A fresh endpoint secret in the form merchants paste into their verifier: `whsec_<base64>`. */
export function newEndpointSecret(): string {
  return `${secretPrefix}${randomBytes(secretBytes).toString('base64')}`;
}

/** The Standard Webhooks bounds on a secret's bytes. */
export const secretBytesMin = 24;
export const secretBytesMax = 64;

/** How many key bytes a `whsec_…` secret holds; 0 when it is not in that form. */
export function secretByteLength(secret: string): number {
  return secretPattern.test(secret) ? Buffer.from(secret.slice(secretPrefix.length), 'base64').length : 0;
}

/** The HMAC key a `whsec_…` secret stands for: the base64-decoded part after the prefix. */
export function secretKey(secret: string): Buffer {
  assert(secretPattern.test(secret), 'an endpoint secret is whsec_ followed by base64');
  return Buffer.from(secret.slice(secretPrefix.length), 'base64');
}

export type SignedMessage = { id: string; timestampSeconds: number; body: string };

export function sign(key: Buffer, message: SignedMessage): string {
  const digest = createHmac('sha256', key)
    .update(`${message.id}.${message.timestampSeconds}.${message.body}`, 'utf8')
    .digest('base64');
  return `${signatureVersion},${digest}`;
}

/**
 * The three headers every delivery attempt carries; the timestamp is the attempt's own. With more
 * than one key (a secret rotation's overlap) the signature header holds one space-separated
 * `v1,…` signature per key, newest first: a verifier accepts the message if any one matches.
 */
export function signedHeaders(
  key: Buffer | readonly Buffer[],
  message: SignedMessage,
): Record<string, string> {
  const keys = Buffer.isBuffer(key) ? [key] : key;
  assert(keys.length > 0, 'a message is signed with at least one key');
  return {
    'webhook-id': message.id,
    'webhook-timestamp': String(message.timestampSeconds),
    'webhook-signature': keys.map((each) => sign(each, message)).join(' '),
  };
}
