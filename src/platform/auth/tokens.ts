import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Keyring } from './keyring.ts';
import { isRole, type Principal, type Role } from './roles.ts';

export const tokenIssuer = 'settledesk';
export const tokenAudience = 'settledesk-api';
const tokenAlgorithm = 'HS256';
/** Tolerated clock difference between instances when checking `exp`/`nbf`, in seconds. */
const clockToleranceSeconds = 5;

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
    return { subject: payload.sub ?? '', role: payload.role, keyId, tokenId: payload.jti ?? '' };
  } catch (error) {
    if (error instanceof TokenRejected) throw error;
    if (error instanceof joseErrors.JOSEError) throw new TokenRejected(error.code);
    throw error;
  }
}
