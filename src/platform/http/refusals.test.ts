import { connect as connectSocket } from 'node:net';
import { Writable } from 'node:stream';
import { Type } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../../test/support/service.ts';
import { authenticator } from '../../server.ts';
import { connect } from '../db/connect.ts';
import { freePort } from '../db/embedded.ts';
import type { Sql } from '../db/types.ts';
import { problemCatalogue } from '../errors.ts';
import { createLogger } from '../logging.ts';
import { httpDatabaseUnavailable } from '../metrics.ts';
import { type App, createApp } from './app.ts';
import { FreeText } from './schemas.ts';

/**
 * Refusals that happen outside a route's own code: Fastify's router and node's HTTP parser before
 * any route runs, a client that goes away mid-body, and database errors that reach the handler.
 * Each must answer problem+json (or, for a vanished client, log quietly), never a 500.
 */

const logLines: { level: string; msg: string; reason?: string }[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
    done();
  },
});

let service: TestService;
/** A pool whose hosts are all gone, as the API's is during a failover before the promotion. */
let noPrimary: Sql;
let app: App;
let port: number;

function testRoutes(app: App): void {
  app.get(
    '/v1/test/items/:id',
    { config: { access: 'public' }, schema: { params: Type.Object({ id: Type.String() }) } },
    async (request) => ({ id: request.params.id }),
  );
  app.post(
    '/v1/test/notes',
    {
      config: { access: 'public' },
      schema: {
        body: Type.Object({ note: FreeText({ maxLength: 100_000 }) }, { additionalProperties: false }),
      },
    },
    async (request) => ({ length: request.body.note.length }),
  );
  // Raises the SQLSTATE it is given, as a statement in a real PostgreSQL session would.
  app.get(
    '/v1/test/sqlstate/:code',
    {
      config: { access: 'public' },
      schema: { params: Type.Object({ code: Type.String({ pattern: '^[0-9A-Z]{5}$' }) }) },
    },
    async (request) => {
      await service.db.sql.unsafe(
        `do $$ begin raise exception 'raised for the test' using errcode = '${request.params.code}'; end $$`,
      );
      return {};
    },
  );
  app.get('/v1/test/no-primary', { config: { access: 'public' } }, async () => {
    await noPrimary`select 1`;
    return {};
  });
  // Loses its database connection after the body was read, as postgres.js reports it.
  app.post(
    '/v1/test/lost-connection',
    { config: { access: 'public' }, schema: { body: Type.Object({ note: Type.String({ maxLength: 20 }) }) } },
    async () => {
      throw Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
    },
  );
}

beforeAll(async () => {
  service = await startTestService();
  const dead = [await freePort(), await freePort()].map((port) => `127.0.0.1:${port}`);
  noPrimary = connect({
    url: `postgres://postgres@${dead.join(',')}/postgres?target_session_attrs=read-write`,
    poolMax: 1,
    logger: createLogger('silent'),
  });
  app = await createApp({
    logger: createLogger('debug', logSink),
    authenticator: authenticator(service.runtime),
    bodyBytesMax: 1_048_576,
    routes: [testRoutes],
    version: 'test',
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  port = typeof address === 'object' && address !== null ? address.port : 0;
});

afterAll(async () => {
  await noPrimary.end({ timeout: 1 });
  await app.close();
  await service.close();
});

type RawResponse = { status: number; headers: Record<string, string>; body: string };

/** Sends bytes as they are, with no client library to tidy them, and reads the whole answer. */
function raw(request: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connectSocket(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', body = ''] = text.split('\r\n\r\n', 2);
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const headers = Object.fromEntries(
        headerLines.map((line) => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        }),
      );
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
    socket.end(request);
  });
}

function expectProblem(response: RawResponse, type: keyof typeof problemCatalogue): void {
  expect(response.status).toBe(problemCatalogue[type].status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  const body = JSON.parse(response.body);
  expect(body).toMatchObject({ type, status: response.status, title: problemCatalogue[type].title });
  expect(typeof body.detail).toBe('string');
  expect(body.requestId).toBe(response.headers['x-request-id']);
}

const get = (path: string, headers = '') =>
  `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${headers}Connection: close\r\n\r\n`;

describe('refusals before a route runs', () => {
  it('answers a URL whose percent-encoding is not UTF-8 with a malformed-url problem', async () => {
    expectProblem(await raw(get('/v1/test/items/%ED%A0%80')), 'request/malformed-url');
    expectProblem(await raw(get('/v1/test/items/%E0%A4%A')), 'request/malformed-url');
  });

  it('answers a path parameter over the router limit with a uri-too-long problem', async () => {
    expectProblem(await raw(get(`/v1/test/items/${'a'.repeat(101)}`)), 'request/uri-too-long');
  });

  it('answers headers over 16 KiB with a headers-too-large problem', async () => {
    const response = await raw(get('/v1/test/items/1', `X-Padding: ${'a'.repeat(17 * 1024)}\r\n`));
    expectProblem(response, 'request/headers-too-large');
  });

  it('answers a control character in a header value with a malformed problem', async () => {
    expectProblem(await raw(get('/v1/test/items/1', 'X-Note: a\u0001b\r\n')), 'request/malformed');
    expectProblem(await raw(get('/v1/test/items/1', 'X-Note: a\u0000b\r\n')), 'request/malformed');
  });

  it('answers bytes that are not HTTP with a malformed problem', async () => {
    expectProblem(await raw('HELLO\r\n\r\n'), 'request/malformed');
  });
});

describe('free text', () => {
  const post = (note: string) => app.inject({ method: 'POST', url: '/v1/test/notes', payload: { note } });

  it('refuses NUL, other control characters and lone surrogates with a 400 naming the field', async () => {
    for (const note of ['a\u0000b', 'a\u0007', 'line\nbreak', '\u009f', 'lone \ud800', '\udfff x']) {
      const response = await post(note);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({
        type: 'request/validation',
        errors: [
          { field: 'body.note', message: 'must not contain control characters or lone UTF-16 surrogates' },
        ],
      });
    }
  });

  it('accepts any other text, including astral characters and right-to-left marks', async () => {
    for (const note of ['Zoë’s café 😀', '\u202e\u2066 mixed', 'x'.repeat(50_000)]) {
      expect((await post(note)).statusCode).toBe(200);
    }
  });
});

describe('database errors that reach the handler', () => {
  const cases = [
    ['22021', 400, 'request/invalid-value'],
    ['22P02', 400, 'request/invalid-value'],
    ['22008', 400, 'request/invalid-value'],
    ['54000', 400, 'request/invalid-value'],
    ['23505', 409, 'request/conflict'],
    ['23503', 422, 'request/constraint-violated'],
    ['40001', 503, 'service/unavailable'],
    ['40P01', 503, 'service/unavailable'],
    ['55P03', 503, 'service/unavailable'],
    ['57014', 503, 'service/unavailable'],
    ['53300', 503, 'service/unavailable'],
    ['08006', 503, 'service/unavailable'],
    ['42601', 500, 'internal'],
    ['XX000', 500, 'internal'],
    ['P0001', 500, 'internal'],
  ] as const;

  it.each(cases)('answers SQLSTATE %s with %i %s and no PostgreSQL message', async (code, status, type) => {
    const response = await app.inject({ method: 'GET', url: `/v1/test/sqlstate/${code}` });
    expect(response.statusCode).toBe(status);
    expect(response.json()).toMatchObject({ type, status });
    expect(response.body).not.toContain('raised for the test');
    if (type === 'service/unavailable') expect(response.headers['retry-after']).toBe('1');
  });
});

async function unavailableCount(code: string): Promise<number> {
  const metric = await httpDatabaseUnavailable.get();
  return metric.values.find((value) => value.labels.code === code)?.value ?? 0;
}

describe('a database with no writable host (a failover before the promotion)', () => {
  it('answers 503 service/unavailable with Retry-After, counted by code and logged with the hosts, never 500', async () => {
    const before = await unavailableCount('NO_WRITABLE_HOST');
    const logged = logLines.length;
    const response = await app.inject({ method: 'GET', url: '/v1/test/no-primary' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ type: 'service/unavailable', status: 503 });
    expect(response.headers['retry-after']).toBe('1');
    expect(await unavailableCount('NO_WRITABLE_HOST')).toBe(before + 1);
    const lines = logLines.slice(logged);
    expect(lines.find((line) => line.msg === 'database refused')?.reason).toMatch(
      /^no host accepts writes \(/,
    );
    expect(lines.filter((line) => line.msg === 'unhandled error')).toEqual([]);
  });
});

describe('a client that goes away mid-body', () => {
  it('is not confused with the database dropping its connection after the body was read', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/v1/test/lost-connection`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ note: 'whole body' }),
    });
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ type: 'service/unavailable' });
    expect(response.headers.get('retry-after')).toBe('1');
    expect(await unavailableCount('ECONNRESET')).toBeGreaterThan(0);
  });

  it('is logged as a disconnect at info, not as an unhandled error', async () => {
    const before = logLines.length;
    await new Promise<void>((resolve) => {
      const socket = connectSocket(port, '127.0.0.1', () => {
        socket.write(
          'POST /v1/test/notes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
            'Content-Length: 1000\r\n\r\n{"note":"only part of',
        );
        setTimeout(() => socket.destroy(), 50);
      });
      socket.on('close', () => resolve());
    });
    await expect
      .poll(() =>
        logLines.slice(before).some((line) => line.msg === 'client disconnected before the request was read'),
      )
      .toBe(true);
    const errors = logLines.slice(before).filter((line) => line.level === 'error' || line.level === 'fatal');
    expect(errors).toEqual([]);
  });
});
