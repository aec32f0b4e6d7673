import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/roles.ts';
import { DomainError } from '../errors.ts';
import type { App } from './app.ts';

/** Turns a bearer token into a principal, or throws DomainError('auth/unauthenticated'). */
export type Authenticator = (token: string) => Promise<Principal>;

const bearerPattern = /^Bearer ([A-Za-z0-9._~+/=-]+)$/;

function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? bearerPattern.exec(header) : null;
  if (!match?.[1]) throw new DomainError('auth/unauthenticated', 'missing or malformed bearer token');
  return match[1];
}

/** 401 when the caller is not known, 403 when it is known but lacks the route's role. */
export function registerAuth(app: App, authenticate: Authenticator): void {
  app.addHook('onRequest', async (request, reply) => {
    const access = request.routeOptions.config.access;
    if (access === undefined || access === 'public') return;
    const principal = await authenticate(bearerToken(request));
    request.principal = principal;
    // Fastify writes "request completed" through reply.log, a logger of its own: both carry the
    // caller, so every line after authentication can be searched by subject.
    request.log = request.log.child({ subject: principal.subject, role: principal.role });
    reply.log = request.log;
    if (!access.includes(principal.role)) {
      throw new DomainError('auth/forbidden', `this route requires one of: ${access.join(', ')}`);
    }
  });
}
