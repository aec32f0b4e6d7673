import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { lookupTransaction, readPathsOf } from '../stellar/read.ts';
import { probeTimeoutMs } from './stellar-status.ts';

/**
 * Looks a transaction hash up on every path in order (each Horizon, then RPC) through the read
 * module: what the timeline shows next to each attempt. A path that does not answer is named, and
 * a "not found" from one path moves on to the next, so a stale Horizon is never mistaken for
 * "never applied": `not_found` means no path that answered has it, and `path` is the one that had
 * ingested furthest.
 */

export type OnChainLookup = {
  hash: string;
  path: string | null;
  status: 'applied' | 'failed' | 'not_found' | 'unknown';
  ledger: number | null;
  unanswered: { path: string; error: string }[];
};

export async function lookupOnChain(endpoints: StellarEndpoints, hash: string): Promise<OnChainLookup> {
  const found = await lookupTransaction(readPathsOf(endpoints), hash, { timeoutMs: probeTimeoutMs });
  const unanswered = found.misses.map(({ path, error }) => ({ path, error }));
  if (found.kind === 'found') {
    const { successful, ledger } = found.transaction;
    return { hash, path: found.path, status: successful ? 'applied' : 'failed', ledger, unanswered };
  }
  const furthest = found.kind === 'absent' ? found.path : found.behind[0]?.path;
  if (furthest === undefined) return { hash, path: null, status: 'unknown', ledger: null, unanswered };
  return { hash, path: furthest, status: 'not_found', ledger: null, unanswered };
}
