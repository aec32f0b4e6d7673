import { Writable } from 'node:stream';
import { SignJWT, UnsecuredJWT } from 'jose';
import { Type } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../../test/support/service.ts';
import { authenticator } from '../../server.ts';
import { operatorRoles } from '../auth/roles.ts';
import { clockToleranceSeconds, issueToken, tokenAudience, tokenIssuer } from '../auth/tokens.ts';
import { createLogger } from '../logging.ts';
import { registry } from '../metrics.ts';
import { type App, createApp } from './app.ts';

const logLines: string[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  },
});

/** Routes that exist only to drive the platform: a strict body, a crash, a protected resource. */
function testRoutes(app: App): void {
  app.post(
    '/v1/test/echo/:id',
    {
      config: { access: 'public' },
      schema: {
        params: Type.Object({ id: Type.String({ maxLength: 8 }) }),
        body: Type.Object(
          {
            amount: Type.String({ pattern: '^[0-9]+$' }),
            note: Type.Optional(Type.String({ maxLength: 10 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => {
      // A careless handler that logs everything it was given: redaction must still hold.
      request.log.info({ body: request.body, headers: request.headers }, 'echo received');
      return { id: request.params.id, amount: request.body.amount };
    },
  );
  app.get(
    '/v1/test/search',
    {
      config: { access: 'public' },
      schema: {
        querystring: Type.Object({
          limit: Type.Optional(Type.Integer()),
          cursor: Type.Optional(Type.String()),
        }),
      },
    },
    async () => ({ items: [] }),
  );
  app.get('/v1/test/boom', { config: { access: 'public' } }, async () => {
    throw new Error('insert into secret_table values (1) -- at Object.<anonymous> (/srv/app.ts:1:1)');
  });
  app.get('/v1/test/operators', { config: { access: operatorRoles } }, async (request) => ({
    subject: request.principal?.subject,
  }));
}

let service: TestService;
let app: App;

beforeAll(async () => {
  service = await startTestService();
  app = await createApp({
    logger: createLogger('info', logSink),
    authenticator: authenticator(service.runtime),
    bodyBytesMax: 4_096,
    routes: [testRoutes],
    version: 'test',
  });
});

afterAll(async () => {
  await app.close();
  await service.close();
});

describe('problem responses', () => {
  it('answers an unknown route with a 404 problem carrying the request id', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/nowhere' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const body = response.json();
    expect(body).toMatchObject({ type: 'request/not-found', status: 404, title: 'No such route' });
    expect(body.requestId).toBe(response.headers['x-request-id']);
  });

  it('answers an invalid body with a 400 problem that names each bad field', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/test/echo/abc',
      payload: { amount: 'ten', extra: true },
    });
    expect(response.statusCode).toBe(400);
    const body = response.json();
    expect(body.type).toBe('request/validation');
    const fields = body.errors.map((error: { field: string }) => error.field);
    expect(fields).toContain('body.amount');
    expect(fields).toContain('body.extra');
    expect(body.detail).toContain('body.amount');
  });

  it('refuses a JSON number where the schema wants a decimal string instead of coercing it', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/test/echo/abc', payload: { amount: 100 } });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors[0].field).toBe('body.amount');
  });

  it('answers malformed JSON with a malformed-body problem', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/test/echo/abc',
      headers: { 'content-type': 'application/json' },
      payload: '{"amount":',
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().type).toBe('request/malformed-body');
  });

  it('answers a thrown error with a generic 500 that leaks neither stack nor SQL', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/v1/test/boom',
      headers: { 'x-request-id': 'req-500-test' },
    });
    expect(response.statusCode).toBe(500);
    expect(response.headers['x-request-id']).toBe('req-500-test');
    const body = response.json();
    expect(body).toMatchObject({ type: 'internal', status: 500, requestId: 'req-500-test' });
    expect(response.body).not.toMatch(/secret_table|insert into|\.ts:|at Object/);
  });

  it('echoes a sane X-Request-Id and replaces an unsafe one', async () => {
    const kept = await app.inject({
      method: 'GET',
      url: '/v1/nowhere',
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(kept.headers['x-request-id']).toBe('abc-123');
    const replaced = await app.inject({
      method: 'GET',
      url: '/v1/nowhere',
      headers: { 'x-request-id': 'bad id\u0001' },
    });
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('authentication and roles', () => {
  const protectedUrl = '/v1/test/operators';
  const call = (authorization?: string) =>
    app.inject({ method: 'GET', url: protectedUrl, headers: authorization ? { authorization } : {} });

  it('answers 401 without a token and with a garbage token', async () => {
    expect((await call()).statusCode).toBe(401);
    expect((await call()).json().type).toBe('auth/unauthenticated');
    expect((await call('Bearer not.a.token')).statusCode).toBe(401);
    expect((await call('Basic dXNlcjpwYXNz')).statusCode).toBe(401);
  });

  it('answers 403 to a valid token whose role is too low, and 200 to a sufficient one', async () => {
    const viewer = await call(`Bearer ${await service.token('viewer')}`);
    expect(viewer.statusCode).toBe(403);
    expect(viewer.json().type).toBe('auth/forbidden');
    const operator = await call(`Bearer ${await service.token('operator', 'olga')}`);
    expect(operator.statusCode).toBe(200);
    expect(operator.json()).toEqual({ subject: 'olga' });
  });

  it('refuses a token signed with an unknown kid', async () => {
    const { secret } = service.runtime.keyring.signingKey();
    const token = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k_unknown' })
      .setSubject('mallory')
      .setIssuer(tokenIssuer)
      .setAudience(tokenAudience)
      .setJti('j1')
      .setExpirationTime('5m')
      .sign(secret);
    expect((await call(`Bearer ${token}`)).statusCode).toBe(401);
  });

  it('refuses an unsigned alg:none token', async () => {
    const { kid } = service.runtime.keyring.signingKey();
    const unsigned = new UnsecuredJWT({ role: 'admin', kid })
      .setSubject('mallory')
      .setIssuer(tokenIssuer)
      .setAudience(tokenAudience)
      .setExpirationTime('5m')
      .encode();
    expect((await call(`Bearer ${unsigned}`)).statusCode).toBe(401);
  });

  it('refuses a token that expires after it was accepted (verified tokens are not cached past expiry)', async () => {
    const token = await issueToken(service.runtime.keyring, {
      subject: 'brief',
      role: 'operator',
      ttlSeconds: 1,
    });
    expect((await call(`Bearer ${token}`)).statusCode).toBe(200);
    // Past its expiry plus the clock tolerance allowed between instances.
    await new Promise((resolve) => setTimeout(resolve, 1_000 + clockToleranceSeconds * 1_000 + 1_100));
    expect((await call(`Bearer ${token}`)).statusCode).toBe(401);
  });

  it('refuses an expired token', async () => {
    const { kid, secret } = service.runtime.keyring.signingKey();
    const expired = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid })
      .setSubject('old')
      .setIssuer(tokenIssuer)
      .setAudience(tokenAudience)
      .setJti('j2')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7_200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3_600)
      .sign(secret);
    expect((await call(`Bearer ${expired}`)).statusCode).toBe(401);
  });
});

describe('logging', () => {
  it('never writes the bearer token, a planted email or a planted secret', async () => {
    const token = await service.token('operator', 'logger-test');
    const email = 'planted.person@example.org';
    const secret = 'sk_live_PLANTEDSECRET123';
    logLines.length = 0;
    const response = await app.inject({
      method: 'POST',
      url: '/v1/test/echo/abc',
      headers: { authorization: `Bearer ${token}`, 'x-api-key': secret },
      payload: {
        amount: '5',
        note: 'hi',
        email,
        webhookSecret: secret,
        customer: { email, phone: '+15550100' },
      },
    });
    expect(response.statusCode).toBe(400);
    await app.inject({
      method: 'POST',
      url: '/v1/test/echo/abc',
      headers: { authorization: `Bearer ${token}` },
      payload: { amount: `${email}` },
    });
    const logged = logLines.join('\n');
    expect(logLines.length).toBeGreaterThan(2);
    expect(logged).not.toContain(token);
    expect(logged).not.toContain(email);
    expect(logged).not.toContain(secret);
    expect(logged).not.toContain('+15550100');
  });

  it('logs a URL as its route template and the names of the query parameters the route declares', async () => {
    logLines.length = 0;
    const requests = {
      'url-query': '/v1/test/search?limit=5&cursor=planted-cursor&api_key=planted-key&phone=%2B15550199',
      'url-no-route': '/v1/nowhere/planted-path?q=planted-query',
      'url-path': '/v1/test/echo/planted-id',
    };
    for (const [requestId, url] of Object.entries(requests)) {
      const method = url.startsWith('/v1/test/echo') ? 'POST' : 'GET';
      await app.inject({ method, url, headers: { 'x-request-id': requestId }, payload: { amount: '1' } });
    }
    const incoming = logLines
      .map((line) => JSON.parse(line))
      .filter((line) => line.msg === 'incoming request');
    expect(Object.fromEntries(incoming.map((line) => [line.requestId, line.req.url]))).toEqual({
      'url-query': '/v1/test/search?limit&cursor&(2 undeclared)',
      'url-no-route': '(no route)',
      'url-path': '/v1/test/echo/:id',
    });
    expect(logLines.join('\n')).not.toMatch(/planted|15550199/);
  });

  it('logs a refusal by its problem type and status, not by the detail that quotes the request', async () => {
    logLines.length = 0;
    await app.inject({
      method: 'GET',
      url: '/v1/nowhere/planted-route',
      headers: { 'x-request-id': 'refused' },
    });
    const refused = logLines.map((line) => JSON.parse(line)).find((line) => line.msg === 'request refused');
    expect(refused).toMatchObject({ requestId: 'refused', problem: 'request/not-found', status: 404 });
    expect(refused).not.toHaveProperty('detail');
    expect(logLines.join('\n')).not.toContain('planted-route');
  });

  it('puts the request id in every log line of a request', async () => {
    logLines.length = 0;
    await app.inject({
      method: 'POST',
      url: '/v1/test/echo/abc',
      headers: { 'x-request-id': 'trace-me' },
      payload: { amount: '7' },
    });
    const lines = logLines.map((line) => JSON.parse(line));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(line.requestId).toBe('trace-me');
  });
});

describe('metrics', () => {
  it('labels request durations with the route template, not the raw path', async () => {
    await app.inject({ method: 'POST', url: '/v1/test/echo/zz9', payload: { amount: '1' } });
    const text = await registry.metrics();
    expect(text).toMatch(
      /http_request_duration_seconds_count\{method="POST",path="\/v1\/test\/echo\/:id",status="200"\}/,
    );
    expect(text).not.toContain('/v1/test/echo/zz9');
  });
});
