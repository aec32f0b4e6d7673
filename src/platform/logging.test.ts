import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { newApiKey } from './auth/api-keys.ts';
import { DomainError } from './errors.ts';
import { createLogger, redactedMarker, redactString, redactValue, serializeError } from './logging.ts';

/** A logger at the most verbose level whose lines are kept, parsed, for the assertions. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger('trace', sink), lines };
}

/** An error shaped as postgres.js raises one: its fields are own, enumerable properties. */
function postgresError(fields: Record<string, string>): Error {
  const error = new Error(fields.message);
  error.name = 'PostgresError';
  return Object.assign(error, fields);
}

describe('redacting free text', () => {
  it('hides bearer and basic credentials, JWTs, emails and Stellar seeds', () => {
    const seed = `S${'A'.repeat(55)}`;
    const text = `Bearer abcdefgh12345 Basic dXNlcjpwYXNzd29yZA== eyJhbGciOi.eyJzdWIi.sig ana@example.com ${seed}`;
    const redacted = redactString(text);
    for (const secret of ['abcdefgh12345', 'dXNlcjpwYXNzd29yZA==', 'eyJhbGciOi', 'ana@example.com', seed]) {
      expect(redacted).not.toContain(secret);
    }
  });

  it('hides an API key anywhere in free text or under any key, even cut short', () => {
    const { token } = newApiKey(randomUUID());
    const { logger, lines } = capturedLogger();
    logger.info(
      { note: `client sent ${token}.`, header: { 'x-forwarded': token.slice(0, 20) } },
      `saw ${token}`,
    );
    const written = JSON.stringify(lines);
    expect(written).not.toContain(token.slice(9, 20));
    expect(written).not.toContain('sdk_live_');
    expect(lines[0]?.note).toBe(`client sent ${redactedMarker}.`);
  });

  it('leaves prose about tokens readable', () => {
    expect(redactString('the bearer token was refused')).toBe('the bearer token was refused');
  });
});

describe('redacting by key', () => {
  it('shows the Stellar network passphrase but hides a passphrase of anyone else', () => {
    const network = 'Test SDF Network ; September 2015';
    const redacted = redactValue({
      networkPassphrase: network,
      stellar: { network_passphrase: network },
      passphrase: 'correct horse battery staple',
      user: { walletPassphrase: 'correct horse battery staple' },
    });
    expect(redacted).toEqual({
      networkPassphrase: network,
      stellar: { network_passphrase: network },
      passphrase: redactedMarker,
      user: { walletPassphrase: redactedMarker },
    });
  });

  it('shows a Horizon paging token but hides access and refresh tokens', () => {
    const redacted = redactValue({
      pagingToken: '123456789-1',
      paging_token: '42',
      token: 't',
      refreshToken: 'r',
    });
    expect(redacted).toEqual({
      pagingToken: '123456789-1',
      paging_token: '42',
      token: redactedMarker,
      refreshToken: redactedMarker,
    });
  });

  it("shows an error's name but hides a person's name elsewhere in the line", () => {
    const redacted = redactValue({
      err: { type: 'PostgresError', name: 'PostgresError', cause: { name: 'AbortError' } },
      customer: { name: 'Ana Lima' },
      name: 'Ana Lima',
    });
    expect(redacted).toEqual({
      err: { type: 'PostgresError', name: 'PostgresError', cause: { name: 'AbortError' } },
      customer: { name: redactedMarker },
      name: redactedMarker,
    });
  });
});

describe('serializing errors', () => {
  it('logs a domain error by its problem type, never by the detail that may quote the request', () => {
    const error = new DomainError('ledger/unknown-asset', 'unknown asset PIIQUOTED', { accountId: 'a-1' });
    expect(serializeError(error)).toEqual({
      type: 'DomainError',
      problem: 'ledger/unknown-asset',
      status: 422,
    });
  });

  it('withholds what PostgreSQL quotes from data and constraint errors but keeps what failed', () => {
    const check = postgresError({
      message: 'new row for relation "accounts" violates check constraint "owner_ref_check"',
      code: '23514',
      detail: 'Failing row contains (pii-owner, customer, XLM).',
      table_name: 'accounts',
      constraint_name: 'owner_ref_check',
    });
    const syntax = postgresError({
      message: 'invalid input syntax for type uuid: "urn:uuid:pii-id"',
      code: '22P02',
      where: "unnamed portal parameter $1 = '...'",
    });
    const checkLine = JSON.stringify(serializeError(check));
    const syntaxLine = JSON.stringify(serializeError(syntax));
    expect(checkLine).not.toContain('pii-owner');
    expect(syntaxLine).not.toContain('pii-id');
    expect(serializeError(check)).toMatchObject({
      type: 'PostgresError',
      code: '23514',
      table_name: 'accounts',
      constraint_name: 'owner_ref_check',
    });
    expect(serializeError(check)).not.toHaveProperty('detail');
    expect(String((serializeError(syntax) as { stack: string }).stack)).toMatch(
      /^PostgresError: PostgreSQL 22P02/,
    );
  });

  it('keeps the message and detail of a PostgreSQL error that quotes no data (a deadlock)', () => {
    const deadlock = postgresError({
      message: 'deadlock detected',
      code: '40P01',
      detail: 'Process 1 waits for ShareLock on transaction 2; blocked by process 3.',
    });
    expect(serializeError(deadlock)).toMatchObject({ message: 'deadlock detected', code: '40P01' });
    expect(serializeError(deadlock)).toHaveProperty('detail');
  });

  it("withholds the message of Fastify's own errors, which quote the URL or header they refused", () => {
    const error = Object.assign(new Error('Unsupported Media Type: text/pii-header'), {
      code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
      statusCode: 415,
    });
    const serialized = serializeError(error);
    expect(JSON.stringify(serialized)).not.toContain('pii-header');
    expect(serialized).toMatchObject({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 });
  });

  it('keeps a programmer error whole: its message is ours', () => {
    const error = new Error('assertion failed: a batch holds at most 100 payouts');
    expect(serializeError(error)).toMatchObject({ type: 'Error', message: error.message });
  });

  it('applies to every logger: a refused request logged as `err` keeps its type and loses its detail', () => {
    const { logger, lines } = capturedLogger();
    logger.error({ err: new DomainError('webhook/reference-mismatch', 'reference PIIREF was used') }, 'x');
    logger.error({ err: postgresError({ message: 'deadlock detected', code: '40P01' }) }, 'y');
    expect(JSON.stringify(lines)).not.toContain('PIIREF');
    expect(lines[0]?.err).toEqual({
      type: 'DomainError',
      problem: 'webhook/reference-mismatch',
      status: 409,
    });
    expect(lines[1]?.err).toMatchObject({ type: 'Error', name: 'PostgresError', code: '40P01' });
  });
});
