import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { probeTimeoutMs } from './stellar-status.ts';

/**
 * Looks a transaction hash up on every path in order (each Horizon, then RPC) until one answers:
 * what the timeline shows next to each attempt. A path that does not answer is named, so "not
 * found" from a stale Horizon is never mistaken for "never applied".
 */

export type OnChainLookup = {
  hash: string;
  path: string | null;
  status: 'applied' | 'failed' | 'not_found' | 'unknown';
  ledger: number | null;
  unanswered: { path: string; error: string }[];
};

type HorizonTransaction = { successful?: boolean; ledger?: number };
type RpcTransaction = { status?: string; ledger?: number };

function describe(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${probeTimeoutMs} ms`;
  return error instanceof Error ? error.message : String(error);
}

async function viaHorizon(
  url: string,
  hash: string,
): Promise<Omit<OnChainLookup, 'hash' | 'path' | 'unanswered'>> {
  const response = await fetch(`${url}/transactions/${hash}`, {
    signal: AbortSignal.timeout(probeTimeoutMs),
  });
  if (response.status === 404) return { status: 'not_found', ledger: null };
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const body = (await response.json()) as HorizonTransaction;
  return { status: body.successful ? 'applied' : 'failed', ledger: body.ledger ?? null };
}

async function viaRpc(
  url: string,
  hash: string,
): Promise<Omit<OnChainLookup, 'hash' | 'path' | 'unanswered'>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'getTransaction', params: { hash } }),
    signal: AbortSignal.timeout(probeTimeoutMs),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const body = (await response.json()) as { result?: RpcTransaction; error?: { message?: string } };
  if (!body.result) throw new Error(body.error?.message ?? 'no result');
  if (body.result.status === 'NOT_FOUND') return { status: 'not_found', ledger: null };
  return {
    status: body.result.status === 'SUCCESS' ? 'applied' : 'failed',
    ledger: body.result.ledger ?? null,
  };
}

export async function lookupOnChain(endpoints: StellarEndpoints, hash: string): Promise<OnChainLookup> {
  const paths = [
    ...endpoints.horizonUrls.map((url, index) => ({
      path: `horizon-${index}`,
      ask: () => viaHorizon(url, hash),
    })),
    { path: 'rpc', ask: () => viaRpc(endpoints.rpcUrl, hash) },
  ];
  const unanswered: OnChainLookup['unanswered'] = [];
  for (const { path, ask } of paths) {
    try {
      return { hash, path, ...(await ask()), unanswered };
    } catch (error) {
      unanswered.push({ path, error: describe(error) });
    }
  }
  return { hash, path: null, status: 'unknown', ledger: null, unanswered };
}
