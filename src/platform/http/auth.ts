import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Principal, Role } from '../auth/roles.ts';
import { DomainError } from '../errors.ts';
import type { App } from './app.ts';

/** Turns a bearer token into a principal, or throws DomainError('auth/unauthenticated'). */
export type Authenticator = (token: string) => Promise<Principal>;

/**
 * A route-level shared secret, for a caller that can send a fixed bearer token but cannot hold a
 * short-lived signed one (Alertmanager's `http_config.authorization`). A token equal to one of
 * `secrets` is the principal `subject` with `role`; any other token is verified as usual. The
 * route's `access` must still list `role`.
 */
export type BearerSecret = { subject: string; role: Role; secrets: readonly string[] };

/** The key id a shared-secret principal carries instead of a signing key's. */
export const sharedSecretKeyId = 'shared-secret';

/** Compared as SHA-256 digests in constant time, so neither the content nor the length leaks. */
function matchesSecret(token: string, secrets: readonly string[]): boolean {
  const digest = createHash('sha256').update(token).digest();
  let matched = false;
  for (const secret of secrets) {
    matched = timingSafeEqual(digest, createHash('sha256').update(secret).digest()) || matched;
  }
  return matched;
}

function principalOf(secret: BearerSecret): Principal {
  return { subject: secret.subject, role: secret.role, keyId: sharedSecretKeyId, tokenId: sharedSecretKeyId };
}

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
    const token = bearerToken(request);
    const secret = request.routeOptions.config.bearerSecret;
    const principal =
      secret && matchesSecret(token, secret.secrets) ? principalOf(secret) : await authenticate(token);
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
