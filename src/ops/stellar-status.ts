import { Gauge } from 'prom-client';
import { registry } from '../platform/metrics.ts';
import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { StellarHttpError, StellarRpcError } from '../stellar/read.ts';
import type { PathReport } from '../stellar/settlement-chain.ts';

/**
 * What each Stellar path (every Horizon URL, then RPC) looks like from here: reachable, latest
 * ledger and its age, ingestion lag, fee level, and the settlement engine's breaker for it when
 * this process runs the engine. Read-only: it asks, it never submits.
 */

/** One probe request's bound: a hanging path must not hold a triage call. */
export const probeTimeoutMs = 2_000;

export const stellarPathUp = new Gauge({
  name: 'stellar_path_up',
  help: 'Whether a Stellar path (horizon-0, horizon-1, …, rpc) answered its last probe (1) or not (0).',
  labelNames: ['path'] as const,
  registers: [registry],
});

export const stellarLedgerAge = new Gauge({
  name: 'stellar_ledger_age_seconds',
  help: 'Age of the latest closed ledger a Stellar path reports (Horizon: its ingested ledger).',
  labelNames: ['path'] as const,
  registers: [registry],
});

export type PathStatus = {
  path: string;
  kind: 'horizon' | 'rpc';
  url: string;
  reachable: boolean;
  latencyMs: number;
  latestLedger: number | null;
  /** Seconds since the latest ledger closed (Horizon reports it; for RPC it is unknown). */
  latestLedgerAgeSeconds: number | null;
  /** Ledgers Horizon's ingestion is behind its core (Horizon), or behind the best Horizon (RPC). */
  ingestionLagLedgers: number | null;
  fees: { baseFeeStroops: string; p90FeeStroops: string; capacityUsage: string } | null;
  breaker: PathReport['state'] | 'not_in_this_process';
  error: string | null;
};

export type StellarStatus = {
  network: string;
  checkedAt: string;
  paths: PathStatus[];
  anyPathUp: boolean;
};

type HorizonRoot = {
  history_latest_ledger?: number;
  history_latest_ledger_closed_at?: string;
  core_latest_ledger?: number;
};
type FeeStats = { last_ledger_base_fee?: string; ledger_capacity_usage?: string; max_fee?: { p90?: string } };

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(probeTimeoutMs) });
  if (!response.ok) throw new StellarHttpError(url, response.status);
  return (await response.json()) as T;
}

function describe(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${probeTimeoutMs} ms`;
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return error instanceof Error ? `${error.message}${cause}` : String(error);
}

function blank(
  path: string,
  kind: PathStatus['kind'],
  url: string,
  breaker: PathStatus['breaker'],
): PathStatus {
  return {
    path,
    kind,
    url,
    reachable: false,
    latencyMs: 0,
    latestLedger: null,
    latestLedgerAgeSeconds: null,
    ingestionLagLedgers: null,
    fees: null,
    breaker,
    error: null,
  };
}

async function probeHorizon(path: string, url: string, breaker: PathStatus['breaker']): Promise<PathStatus> {
  const status = blank(path, 'horizon', url, breaker);
  const started = performance.now();
  try {
    const [root, fees] = await Promise.all([
      getJson<HorizonRoot>(`${url}/`),
      getJson<FeeStats>(`${url}/fee_stats`).catch(() => undefined),
    ]);
    status.reachable = true;
    status.latestLedger = root.history_latest_ledger ?? null;
    const closedAt = root.history_latest_ledger_closed_at;
    if (closedAt !== undefined) {
      status.latestLedgerAgeSeconds = Math.max(0, Math.round((Date.now() - Date.parse(closedAt)) / 1_000));
    }
    if (root.core_latest_ledger !== undefined && root.history_latest_ledger !== undefined) {
      status.ingestionLagLedgers = Math.max(0, root.core_latest_ledger - root.history_latest_ledger);
    }
    if (fees) {
      status.fees = {
        baseFeeStroops: fees.last_ledger_base_fee ?? '',
        p90FeeStroops: fees.max_fee?.p90 ?? '',
        capacityUsage: fees.ledger_capacity_usage ?? '',
      };
    }
  } catch (error) {
    status.error = describe(error);
  }
  status.latencyMs = Math.round(performance.now() - started);
  return status;
}

type RpcAnswer<T> = { result?: T; error?: { message?: string } };

async function rpcCall<T>(url: string, method: string): Promise<T> {
  const answer = await getJson<RpcAnswer<T>>(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method }),
  });
  if (answer.error || answer.result === undefined) {
    throw new StellarRpcError(0, `${method}: ${answer.error?.message ?? 'no result'}`);
  }
  return answer.result;
}

async function probeRpc(url: string, breaker: PathStatus['breaker']): Promise<PathStatus> {
  const status = blank('rpc', 'rpc', url, breaker);
  const started = performance.now();
  try {
    await rpcCall<{ status: string }>(url, 'getHealth');
    const latest = await rpcCall<{ sequence: number }>(url, 'getLatestLedger');
    status.reachable = true;
    status.latestLedger = latest.sequence;
  } catch (error) {
    status.error = describe(error);
  }
  status.latencyMs = Math.round(performance.now() - started);
  return status;
}

/** Probes every path at once; the whole call is bounded by `probeTimeoutMs` per request. */
export async function probeStellar(
  endpoints: StellarEndpoints,
  breakers: readonly PathReport[] | undefined,
): Promise<StellarStatus> {
  const breakerOf = (path: string): PathStatus['breaker'] =>
    breakers?.find((report) => report.path === path)?.state ?? 'not_in_this_process';
  const paths = await Promise.all([
    ...endpoints.horizonUrls.map((url, index) =>
      probeHorizon(`horizon-${index}`, url, breakerOf(`horizon-${index}`)),
    ),
    probeRpc(endpoints.rpcUrl, breakerOf('rpc')),
  ]);
  const bestHorizon = Math.max(
    0,
    ...paths.map((path) => (path.kind === 'horizon' ? (path.latestLedger ?? 0) : 0)),
  );
  for (const path of paths) {
    if (path.kind === 'rpc' && path.latestLedger !== null && bestHorizon > 0) {
      path.ingestionLagLedgers = Math.max(0, bestHorizon - path.latestLedger);
    }
    stellarPathUp.set({ path: path.path }, path.reachable ? 1 : 0);
    if (path.latestLedgerAgeSeconds !== null)
      stellarLedgerAge.set({ path: path.path }, path.latestLedgerAgeSeconds);
  }
  return {
    network: endpoints.network,
    checkedAt: new Date().toISOString(),
    paths,
    anyPathUp: paths.some((path) => path.reachable),
  };
}
