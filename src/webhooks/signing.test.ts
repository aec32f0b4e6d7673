import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { newEndpointSecret, secretBytes, secretKey, sign, signedHeaders } from './signing.ts';

/**
 * The Standard Webhooks specification's published test vector (the reference libraries' "sign"
 * test): secret, message id, timestamp and payload, and the signature they must give.
 */
const vector = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestampSeconds: 1_614_265_330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

describe('Standard Webhooks signatures', () => {
  it('reproduce the specification’s published test vector', () => {
    expect(sign(secretKey(vector.secret), vector)).toBe(vector.signature);
  });

  it('verify with the standardwebhooks package, for any body and any fresh secret', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.uuid(), (body, id) => {
        const secret = newEndpointSecret();
        const headers = signedHeaders(secretKey(secret), {
          id,
          timestampSeconds: Math.floor(Date.now() / 1_000),
          body,
        });
        const verifier = new Webhook(secret);
        // `verify` throws on a bad signature; for a JSON body it also hands back the parsed payload.
        expect(() => verifier.verify(body, headers, { jsonParse: false })).not.toThrow();
        expect(verifier.sign(id, new Date(Number(headers['webhook-timestamp']) * 1_000), body)).toBe(
          headers['webhook-signature'],
        );
      }),
      { numRuns: 100 },
    );
  });

  it('are refused by the standardwebhooks package when the body, id or secret differ', () => {
    const secret = newEndpointSecret();
    const message = { id: 'evt-1', timestampSeconds: Math.floor(Date.now() / 1_000), body: '{"a":"1"}' };
    const headers = signedHeaders(secretKey(secret), message);
    const verifier = new Webhook(secret);
    expect(() => verifier.verify('{"a":"2"}', headers)).toThrow();
    expect(() => verifier.verify(message.body, { ...headers, 'webhook-id': 'evt-2' })).toThrow();
    expect(() => new Webhook(newEndpointSecret()).verify(message.body, headers)).toThrow();
  });

  it('use secrets of the whsec_ form holding the specified number of random bytes', () => {
    const secrets = new Set(Array.from({ length: 20 }, () => newEndpointSecret()));
    expect(secrets.size).toBe(20);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
      expect(secretKey(secret)).toHaveLength(secretBytes);
    }
  });
});
