import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify';
import { assert } from '../assert.ts';
import type { Access, Principal, Role } from '../auth/roles.ts';
import type { RateLimitConfig } from '../config.ts';
import type { Logger } from '../logging.ts';
import { type Authenticator, type BearerSecret, registerAuth } from './auth.ts';
import { registerRequestMetrics } from './metrics.ts';
import { handleClientError, handleError, handleFrameworkError, handleNotFound } from './problems.ts';
import { type RateLimitCounters, registerRateLimit } from './rate-limit.ts';
import { logRefusal, RequestLogController, requestLogFields } from './request-log.ts';
import { validatorCompiler } from './validation.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    /** A shared secret this one route also accepts as its bearer token (src/platform/http/auth.ts). */
    bearerSecret?: BearerSecret;
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
  interface FastifySchema {
    'x-roles'?: readonly Role[];
  }
}

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** A domain plugs its routes in through one of these; they are registered in a fixed order. */
export type RouteModule = (app: App) => void | Promise<void>;

export type AppOptions = {
  logger: Logger;
  authenticator: Authenticator;
  bodyBytesMax: number;
  routes: readonly RouteModule[];
  version: string;
  /** Per-caller and per-address limits (src/platform/http/rate-limit.ts); unset: none. */
  rateLimit?: { config: RateLimitConfig; counters: RateLimitCounters };
};

const requestIdLengthMax = 128;
const requestIdPattern = /^[A-Za-z0-9._:-]+$/;

/** A caller's `X-Request-Id` is kept when it is sane; otherwise a fresh one is generated. */
function requestId(request: IncomingMessage): string {
  const header = request.headers['x-request-id'];
  if (typeof header === 'string' && header.length <= requestIdLengthMax && requestIdPattern.test(header)) {
    return header;
  }
  return randomUUID();
}

/**
 * Plugins load in a fixed order: external (OpenAPI), then platform (request ids, errors, metrics,
 * auth), then the domains' routes. Every route must declare its access and schemas; a route
 * without them is a programmer error caught at start, not a hole found in production.
 */
export async function createApp(options: AppOptions): Promise<App> {
  const app = Fastify({
    loggerInstance: options.logger.child({}, { serializers: { req: requestLogFields } }),
    genReqId: requestId,
    requestIdHeader: false,
    logController: new RequestLogController({ requestIdLogLabel: 'requestId' }),
    bodyLimit: options.bodyBytesMax,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;
  app.setValidatorCompiler(validatorCompiler);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'settledesk', version: options.version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
  });

  app.addHook('onRoute', (route) => {
    assert(route.config?.access !== undefined, `route ${route.method} ${route.url} declares no access`);
    if (route.config.access !== 'public') {
      // `x-roles` tells a client (and the OpenAPI-driven fuzz test) which token roles may call it.
      route.schema = { ...route.schema, security: [{ bearer: [] }], 'x-roles': [...route.config.access] };
    }
  });
  app.decorateRequest('principal', undefined);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onSend', logRefusal);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  registerRequestMetrics(app);
  registerAuth(app, options.authenticator);
  // After auth: the limit's hook is the route's own, so it runs once the caller is known.
  if (options.rateLimit) await registerRateLimit(app, options.rateLimit.config, options.rateLimit.counters);

  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  for (const routes of options.routes) await routes(app);
  await app.ready();
  return app;
}
