import { createServer } from 'node:net';

/**
 * The ports a process is about to listen on, checked before its slow start steps: the embedded
 * database takes about 17 s to initialise on a first start, and finding out only then that the
 * port was taken wastes that time and leaves more to release.
 */

/** A port this process will listen on, and the settings that choose it (named in a refusal). */
export type PortClaim = { host: string; port: number; variable: string; hostVariable: string };

/** An operating error, reported as one line naming the setting to change, never with a stack. */
export class PortUnavailableError extends Error {
  override name = 'PortUnavailableError';
}

/** The refusal for a failed `listen`, or the error itself when it is not about the address. */
export function listenFailure(error: unknown, claim: PortClaim): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `port ${claim.port} on ${claim.host}`;
  if (code === 'EADDRINUSE') {
    return new PortUnavailableError(`${where} is in use; set ${claim.variable} to a free port`);
  }
  if (code === 'EACCES') {
    return new PortUnavailableError(
      `${where} needs privileges this process does not have; set ${claim.variable} to a port above 1023`,
    );
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    return new PortUnavailableError(
      `${claim.host} is not an address of this machine; set ${claim.hostVariable} to one of its addresses`,
    );
  }
  return error;
}

/**
 * Binds each port and releases it at once. Port 0 means "any free port" and is not checked; two
 * settings naming the same port are refused, as the second listener would fail after the first.
 * A port taken between this check and the real `listen` is still reported by `listenFailure`.
 */
export async function assertPortsFree(claims: readonly PortClaim[]): Promise<void> {
  const fixed = claims.filter((claim) => claim.port !== 0);
  for (const [index, claim] of fixed.entries()) {
    const twin = fixed.slice(0, index).find((other) => other.port === claim.port);
    if (twin !== undefined) {
      throw new PortUnavailableError(
        `${twin.variable} and ${claim.variable} are both ${claim.port}; set ${claim.variable} to another port`,
      );
    }
  }
  for (const claim of fixed) await probe(claim);
}

function probe(claim: PortClaim): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error) => reject(listenFailure(error, claim)));
    server.listen({ host: claim.host, port: claim.port, exclusive: true }, () => {
      server.close(() => resolve());
    });
  });
}
