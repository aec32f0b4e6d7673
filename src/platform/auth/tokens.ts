import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Keyring } from './keyring.ts';
import { isRole, type Principal, type Role } from './roles.ts';

export const tokenIssuer = 'settledesk';
export const tokenAudience = 'settledesk-api';
const tokenAlgorithm = 'HS256';
/** Tolerated clock difference between instances when checking `exp`/`nbf`, in seconds. */
export const clockToleranceSeconds = 5;

export async function issueToken(
  keyring: Keyring,
  claims: { subject: string; role: Role; ttlSeconds: number },
): Promise<string> {
  const { kid, secret } = keyring.signingKey();
  return new SignJWT({ role: claims.role })
    .setProtectedHeader({ alg: tokenAlgorithm, kid, typ: 'JWT' })
    .setSubject(claims.subject)
    .setIssuer(tokenIssuer)
    .setAudience(tokenAudience)
    .setIssuedAt()
    .setExpirationTime(`${claims.ttlSeconds}s`)
    .setJti(randomUUID())
    .sign(secret);
}

export class TokenRejected extends Error {
  override name = 'TokenRejected';
}

/** Verifies signature (by `kid`), algorithm, issuer, audience and expiry; returns who is calling. */
export async function verifyToken(keyring: Keyring, token: string): Promise<Principal> {
  return (await verifyTokenWithExpiry(keyring, token)).principal;
}

async function verifyTokenWithExpiry(
  keyring: Keyring,
  token: string,
): Promise<{ principal: Principal; expiresAtMs: number }> {
  let keyId = '';
  try {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        if (typeof header.kid !== 'string') throw new TokenRejected('token has no key id');
        const key = keyring.verificationKey(header.kid);
        if (key === undefined) throw new TokenRejected('token signed with an unknown or retired key');
        keyId = header.kid;
        return key;
      },
      {
        algorithms: [tokenAlgorithm],
        issuer: tokenIssuer,
        audience: tokenAudience,
        requiredClaims: ['exp', 'sub', 'jti'],
        clockTolerance: clockToleranceSeconds,
      },
    );
    if (!isRole(payload.role)) throw new TokenRejected('token has no valid role');
    return {
      principal: { subject: payload.sub ?? '', role: payload.role, keyId, tokenId: payload.jti ?? '' },
      expiresAtMs: (payload.exp ?? 0) * 1000,
    };
  } catch (error) {
    if (error instanceof TokenRejected) throw error;
    if (error instanceof joseErrors.JOSEError) throw new TokenRejected(error.code);
    throw error;
  }
}

/** Bounded: at most this many verified tokens are remembered per process. */
export const verifiedTokensMax = 10_000;

/**
 * Remembers tokens whose signature already verified, so a busy client does not pay an HMAC
 * through WebCrypto (≈0.18 ms measured) on every request. A remembered token is still refused the
 * moment its key leaves the keyring (retired) or it expires; suspension is checked by the caller
 * on every request as before.
 */
export class VerifiedTokens {
  readonly #entries = new Map<string, { principal: Principal; expiresAtMs: number }>();

  async verify(keyring: Keyring, token: string): Promise<Principal> {
    const hit = this.#entries.get(token);
    if (hit !== undefined) {
      if (hit.expiresAtMs > Date.now() && keyring.verificationKey(hit.principal.keyId) !== undefined) {
        return hit.principal;
      }
      this.#entries.delete(token);
    }
    const verified = await verifyTokenWithExpiry(keyring, token);
    if (this.#entries.size >= verifiedTokensMax) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(token, verified);
    return verified.principal;
  }
}
