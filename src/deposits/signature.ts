import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Provider webhook signatures: `X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
 * `<t>.<raw body>` with the provider's secret. Several `v1=` values may be sent, and two secrets
 * are accepted while one is rotated. Comparison is constant-time; a timestamp outside the tolerance
 * window is refused so a captured request cannot be replayed later.
 */

export const signatureHeader = 'x-webhook-signature';
export const signaturesPerHeaderMax = 4;

export type SignatureCheck =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'mismatch' };

export function sign(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function signatureHeaderValue(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${sign(secret, timestamp, body)}`;
}

function parse(header: string): { timestamp: number; signatures: string[] } | undefined {
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [key, value = ''] = part.trim().split('=', 2);
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === undefined || signatures.length === 0 || signatures.length > signaturesPerHeaderMax)
    return undefined;
  return { timestamp, signatures };
}

export function verifySignature(input: {
  header: string | undefined;
  body: string;
  secrets: readonly string[];
  nowSeconds: number;
  toleranceSeconds: number;
}): SignatureCheck {
  if (input.header === undefined || input.header === '') return { ok: false, reason: 'missing' };
  const parsed = parse(input.header);
  if (parsed === undefined) return { ok: false, reason: 'malformed' };
  if (Math.abs(input.nowSeconds - parsed.timestamp) > input.toleranceSeconds)
    return { ok: false, reason: 'stale' };
  for (const secret of input.secrets) {
    const expected = Buffer.from(sign(secret, parsed.timestamp, input.body), 'hex');
    // Every candidate is compared in full, so timing says nothing about which part matched.
    let matched = false;
    for (const signature of parsed.signatures) {
      if (timingSafeEqual(expected, Buffer.from(signature, 'hex'))) matched = true;
    }
    if (matched) return { ok: true };
  }
  return { ok: false, reason: 'mismatch' };
}
