import { describe, expect, it } from 'vitest';
import { redactString } from './logging.ts';

describe('redacting free text', () => {
  it('hides bearer and basic credentials, JWTs, emails and Stellar seeds', () => {
    const seed = `S${'A'.repeat(55)}`;
    const text = `Bearer abcdefgh12345 Basic dXNlcjpwYXNzd29yZA== eyJhbGciOi.eyJzdWIi.sig ana@example.com ${seed}`;
    const redacted = redactString(text);
    for (const secret of ['abcdefgh12345', 'dXNlcjpwYXNzd29yZA==', 'eyJhbGciOi', 'ana@example.com', seed]) {
      expect(redacted).not.toContain(secret);
    }
  });

  it('leaves prose about tokens readable', () => {
    expect(redactString('the bearer token was refused')).toBe('the bearer token was refused');
  });
});
