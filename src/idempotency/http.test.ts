import { randomUUID } from 'node:crypto';
import { Type } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { type App, createApp } from '../platform/http/app.ts';
import { createLogger } from '../platform/logging.ts';
import { authenticator } from '../server.ts';
import { IdempotencyHeaders, sendIdempotent } from './http.ts';

let service: TestService;
let app: App;

/** A money-moving POST on a resource named in the path, as `/v1/payouts/{id}/resolve` is. */
function actionRoutes(sql: TestService['runtime']['sql']) {
  return (routes: App): void => {
    routes.post(
      '/v1/test/things/:id/act',
      {
        config: { access: 'public' },
        schema: {
          params: Type.Object({ id: Type.String({ maxLength: 40 }) }),
          headers: IdempotencyHeaders,
          body: Type.Object({ reason: Type.String({ maxLength: 40 }) }),
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async () => ({
          status: 202,
          body: { acted: request.params.id },
        })),
    );
  };
}

beforeAll(async () => {
  service = await startTestService();
  app = await createApp({
    logger: createLogger('silent'),
    authenticator: authenticator(service.runtime),
    bodyBytesMax: 4_096,
    routes: [actionRoutes(service.runtime.sql)],
    version: 'test',
  });
});

afterAll(async () => {
  await app.close();
  await service.close();
});

const act = (id: string, key: string) =>
  app.inject({
    method: 'POST',
    url: `/v1/test/things/${id}/act`,
    headers: { 'idempotency-key': key },
    payload: { reason: 'same body' },
  });

describe('idempotency over HTTP', () => {
  it('refuses a key reused with the same body on another resource instead of replaying the first answer', async () => {
    const key = randomUUID();
    const first = await act('thing-a', key);
    expect(first.statusCode).toBe(202);
    expect(first.json()).toEqual({ acted: 'thing-a' });

    const other = await act('thing-b', key);
    expect(other.statusCode).toBe(422);
    expect(other.json()).toMatchObject({ type: 'idempotency/key-reused' });
    expect(other.headers['idempotent-replayed']).toBeUndefined();
  });

  it('replays the stored answer for the same key, resource and body', async () => {
    const key = randomUUID();
    expect((await act('thing-c', key)).statusCode).toBe(202);
    const again = await act('thing-c', key);
    expect(again.statusCode).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual({ acted: 'thing-c' });
  });

  it('treats two spellings of one path parameter as the same resource', async () => {
    const key = randomUUID();
    expect((await act('thing-d', key)).statusCode).toBe(202);
    const encoded = await act('thing-%64', key);
    expect(encoded.statusCode).toBe(202);
    expect(encoded.headers['idempotent-replayed']).toBe('true');
  });
});
