import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../logging.ts';
import { RequestLogController, requestLogFields } from './request-log.ts';

/** A bare Fastify with only the request log wired in: its own 404 and error fallbacks still run. */
async function bareApp() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const app = Fastify({
    loggerInstance: createLogger('trace', sink).child({}, { serializers: { req: requestLogFields } }),
    logController: new RequestLogController({ requestIdLogLabel: 'requestId' }),
  });
  app.get('/broken', async () => {
    throw new Error('planted-in-a-message');
  });
  app.setErrorHandler(async (error) => {
    throw error;
  });
  await app.ready();
  return { app, lines };
}

describe("Fastify's fallback log lines", () => {
  it('write neither the raw URL of an unmatched route nor an error message as the line', async () => {
    const { app, lines } = await bareApp();
    expect(
      (await app.inject({ method: 'GET', url: '/planted-path?planted-name=planted-value' })).statusCode,
    ).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/broken' })).statusCode).toBe(500);
    await app.close();
    const messages = lines.map((line) => JSON.parse(line).msg);
    expect(messages).toContain('route not found');
    expect(messages).toContain('error handler failed');
    expect(lines.join('\n')).not.toMatch(/planted-(path|name|value)/);
    expect(messages.join('\n')).not.toContain('planted-in-a-message');
  });
});
