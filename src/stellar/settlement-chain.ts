import { Horizon, NotFoundError, rpc, TransactionBuilder } from '@stellar/stellar-sdk';
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen } from 'cockatiel';
import { Counter, Histogram } from 'prom-client';
import type {
  DestinationAccount,
  LookupOutcome,
  ResultCodes,
  SettlementChain,
  SubmitOutcome,
} from '../payouts/chain.ts';
import type { CheckResult, DependencyCheck } from '../platform/health.ts';
import type { Logger } from '../platform/logging.ts';
import { registry } from '../platform/metrics.ts';
import { classifyTransport, type TransportClass } from './classify.ts';
import type { StellarEndpoints } from './endpoints.ts';
import {
  type ChainTransaction,
  horizonIngested,
  lookupTransaction,
  type ReadPath,
  readPathsOf,
  transactionOnPath,
} from './read.ts';
import { resultCodesFromXdr } from './result-codes.ts';

/**
 * The Stellar network as the settlement engine sees it: every read and every submission tries the
 * Horizon paths in order, then Stellar RPC (lookups by hash through the read module, read.ts). Each path has a circuit breaker (consecutive transport
 * failures open it; an open path is skipped until it half-opens), and every request is counted in
 * `stellar_requests_total{path,operation,outcome}`.
 */

export const breakerFailuresMax = 5;
export const breakerHalfOpenAfterMs = 5_000;
export const requestTimeoutMs = 10_000;
/** Horizon holds a synchronous submission open until the transaction is in a ledger (or ~60 s). */
export const submitTimeoutMs = 70_000;
/** How long a submission through RPC is polled for before its outcome is called ambiguous. */
export const rpcPollMsMax = 30_000;
const rpcPollIntervalMs = 250;
const baseFeeStroops = 100n;
/** Ledger capacity usage from which the network counts as surging (Horizon's `ledger_capacity_usage`). */
export const surgeCapacityUsage = 0.9;

export const stellarRequests = new Counter({
  name: 'stellar_requests_total',
  help: 'Requests to Stellar by path (horizon-0, horizon-1, …, rpc), operation and outcome.',
  labelNames: ['path', 'operation', 'outcome'] as const,
  registers: [registry],
});

export const stellarRequestDuration = new Histogram({
  name: 'stellar_request_duration_seconds',
  help: 'Duration of requests to Stellar by path and operation.',
  labelNames: ['path', 'operation'] as const,
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

type Path = {
  name: string;
  url: string;
  breaker: ReturnType<typeof circuitBreaker>;
  lastError: string | undefined;
};

/** Thrown by a path that did not answer, so the next path may be tried. */
class PathUnavailable extends Error {
  override name = 'PathUnavailable';
  readonly transport: Exclude<TransportClass, 'answered'>;
  constructor(message: string, transport: Exclude<TransportClass, 'answered'>) {
    super(message);
    this.transport = transport;
  }
}

/** No path answered; `maybeSent` when any of them may have taken the request. */
class NoPathAnswered extends Error {
  override name = 'NoPathAnswered';
  readonly maybeSent: boolean;
  constructor(message: string, maybeSent: boolean) {
    super(message);
    this.maybeSent = maybeSent;
  }
}

function makePath(name: string, url: string): Path {
  const breaker = circuitBreaker(
    handleWhen((error) => error instanceof PathUnavailable),
    { halfOpenAfter: breakerHalfOpenAfterMs, breaker: new ConsecutiveBreaker(breakerFailuresMax) },
  );
  return { name, url, breaker, lastError: undefined };
}

export type StellarChain = SettlementChain & { paths(): PathReport[]; healthChecks(): DependencyCheck[] };
export type PathReport = {
  path: string;
  url: string;
  state: 'closed' | 'open' | 'half-open';
  lastError: string | null;
};

function stateName(state: CircuitState): PathReport['state'] {
  if (state === CircuitState.Open || state === CircuitState.Isolated) return 'open';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'closed';
}

export function createSettlementChain(endpoints: StellarEndpoints, logger: Logger): StellarChain {
  const allowHttp =
    endpoints.network === 'sandbox' || endpoints.horizonUrls.some((url) => url.startsWith('http:'));
  const horizons = endpoints.horizonUrls.map((url, index) => ({
    path: makePath(`horizon-${index}`, url),
    server: new Horizon.Server(url, { allowHttp }),
  }));
  const rpcPath = makePath('rpc', endpoints.rpcUrl);
  const rpcServer = new rpc.Server(endpoints.rpcUrl, { allowHttp, timeout: requestTimeoutMs });

  /** Runs one request on one path; a transport failure marks the path and is rethrown as PathUnavailable. */
  async function onPath<T>(
    path: Path,
    operation: string,
    work: () => Promise<T>,
    outcomeOf?: (value: T) => string,
  ): Promise<T> {
    const timer = stellarRequestDuration.startTimer({ path: path.name, operation });
    const limitMs = operation === 'submit' ? submitTimeoutMs : requestTimeoutMs;
    try {
      const value = await path.breaker.execute(async () => {
        try {
          return await withTimeout(work(), limitMs, `${operation} on ${path.name}`);
        } catch (error) {
          const transport = classifyTransport(error);
          if (transport === 'answered') throw error;
          path.lastError = describe(error);
          throw new PathUnavailable(`${path.name}: ${path.lastError}`, transport);
        }
      });
      path.lastError = undefined;
      stellarRequests.inc({ path: path.name, operation, outcome: outcomeOf?.(value) ?? 'ok' });
      return value;
    } catch (error) {
      const outcome =
        error instanceof BrokenCircuitError
          ? 'circuit_open'
          : error instanceof PathUnavailable
            ? 'unavailable'
            : 'answered_error';
      stellarRequests.inc({ path: path.name, operation, outcome });
      if (error instanceof BrokenCircuitError)
        throw new PathUnavailable(`${path.name}: circuit open`, 'refused');
      throw error;
    } finally {
      timer();
    }
  }

  /** Tries each path in order; the first that answers wins. */
  async function firstAnswer<T>(
    operation: string,
    attempts: { path: Path; run: () => Promise<T> }[],
  ): Promise<T> {
    const failures: PathUnavailable[] = [];
    for (const attempt of attempts) {
      try {
        return await onPath(attempt.path, operation, attempt.run);
      } catch (error) {
        if (!(error instanceof PathUnavailable)) throw error;
        failures.push(error);
      }
    }
    throw new NoPathAnswered(
      `no Stellar path answered ${operation}: ${failures.map((failure) => failure.message).join('; ')}`,
      failures.some((failure) => failure.transport === 'maybe_sent'),
    );
  }

  // The read module's paths carry the same names (horizon-0, …, rpc) as this chain's paths.
  const paths = [...horizons.map((horizon) => horizon.path), rpcPath];
  const readPaths = readPathsOf(endpoints);
  const rpcReadPath = readPaths.at(-1) as ReadPath;
  const readPathOf = (path: Path): ReadPath => readPaths[paths.indexOf(path)] ?? rpcReadPath;
  const pathOf = (readPath: ReadPath): Path => paths[readPaths.indexOf(readPath)] ?? rpcPath;

  async function horizonSubmit(
    server: Horizon.Server,
    path: Path,
    envelopeXdr: string,
  ): Promise<SubmitOutcome> {
    const transaction = TransactionBuilder.fromXDR(envelopeXdr, endpoints.networkPassphrase);
    try {
      const response = await server.submitTransaction(transaction, { skipMemoRequiredCheck: true });
      return { kind: 'success', ledger: response.ledger };
    } catch (error) {
      const status = (error as { response?: { status?: number } }).response?.status;
      const extras = (error as { response?: { data?: { extras?: { result_xdr?: string; hash?: string } } } })
        .response?.data?.extras;
      if (status === 400 && extras?.result_xdr) {
        const codes = resultCodesFromXdr(extras.result_xdr);
        // A 400 is either a refusal at admission or a failure in a ledger: the hash tells which.
        const hash = Buffer.from(transaction.hash()).toString('hex');
        const found = await transactionOnPath(readPathOf(path), hash, requestTimeoutMs).catch(
          () => undefined,
        );
        if (found?.kind === 'found') return appliedOutcome(found.transaction);
        return { kind: 'rejected', codes };
      }
      if (status === 504)
        return { kind: 'ambiguous', reason: `${path.name} answered 504: submission timed out` };
      throw error;
    }
  }

  async function rpcSubmit(envelopeXdr: string): Promise<SubmitOutcome> {
    const transaction = TransactionBuilder.fromXDR(envelopeXdr, endpoints.networkPassphrase);
    const sent = await rpcServer.sendTransaction(transaction);
    if (sent.status === 'ERROR') {
      const codes: ResultCodes = sent.errorResult
        ? resultCodesFromXdr(sent.errorResult.toXDR('base64'))
        : { transaction: 'tx_internal_error', operations: [] };
      return { kind: 'rejected', codes };
    }
    if (sent.status === 'TRY_AGAIN_LATER') throw new PathUnavailable('rpc: TRY_AGAIN_LATER', 'refused');
    const deadline = Date.now() + rpcPollMsMax;
    while (Date.now() < deadline) {
      const found = await transactionOnPath(rpcReadPath, sent.hash, requestTimeoutMs);
      if (found.kind === 'found') return appliedOutcome(found.transaction);
      await new Promise((resolve) => setTimeout(resolve, rpcPollIntervalMs));
    }
    return { kind: 'ambiguous', reason: `rpc: ${sent.hash} not in a ledger after ${rpcPollMsMax} ms` };
  }

  /** Horizon lists the account's trustlines; the issuer of an asset needs none to receive it. */
  async function horizonDestination(
    server: Horizon.Server,
    accountId: string,
    asset: string,
  ): Promise<DestinationAccount | undefined> {
    try {
      const account = await server.loadAccount(accountId);
      const trusted =
        asset === 'XLM' ||
        asset.endsWith(`:${accountId}`) ||
        account.balances.some(
          (line) =>
            'asset_code' in line &&
            'asset_issuer' in line &&
            `${line.asset_code}:${line.asset_issuer}` === asset,
        );
      return { kind: 'exists', trusted };
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** RPC proves the account exists; settledesk does not read trustlines there, so a credit asset stays open. */
  async function rpcDestination(accountId: string, asset: string): Promise<DestinationAccount | undefined> {
    try {
      await rpcServer.getAccount(accountId);
      return { kind: 'exists', trusted: asset === 'XLM' ? true : undefined };
    } catch (error) {
      if (/^Account not found/.test(describe(error))) return undefined;
      throw error;
    }
  }

  return {
    async accountSequence(accountId) {
      return firstAnswer('load_account', [
        ...horizons.map(({ path, server }) => ({
          path,
          run: async () => {
            try {
              return BigInt((await server.loadAccount(accountId)).sequence);
            } catch (error) {
              if (error instanceof NotFoundError) return undefined;
              throw error;
            }
          },
        })),
        {
          path: rpcPath,
          run: async () => {
            try {
              return BigInt((await rpcServer.getAccount(accountId)).sequenceNumber());
            } catch (error) {
              if (/^Account not found/.test(describe(error))) return undefined;
              throw error;
            }
          },
        },
      ]);
    },

    async destination(accountId, asset) {
      // A lagging Horizon may not have ingested the account yet: its "not found" moves on to the
      // next path, and the account is missing only when no path that answered knows it.
      let missingOn: string | undefined;
      const failures: string[] = [];
      const attempts = [
        ...horizons.map(({ path, server }) => ({
          path,
          run: () => horizonDestination(server, accountId, asset),
        })),
        { path: rpcPath, run: () => rpcDestination(accountId, asset) },
      ];
      for (const attempt of attempts) {
        try {
          const found = await onPath(attempt.path, 'load_destination', attempt.run);
          if (found !== undefined) return found;
          missingOn ??= attempt.path.name;
        } catch (error) {
          failures.push(`${attempt.path.name}: ${describe(error)}`);
        }
      }
      if (missingOn !== undefined) return { kind: 'missing' };
      return { kind: 'unknown', reason: `no Stellar path answered: ${failures.join('; ')}` };
    },

    async latestLedger() {
      return firstAnswer('latest_ledger', [
        ...horizons.map(({ path }) => ({ path, run: () => horizonIngested(path.url, requestTimeoutMs) })),
        {
          path: rpcPath,
          run: async () => {
            const latest = await rpcServer.getLatestLedger();
            return { sequence: latest.sequence, closeTime: Number(latest.closeTime) };
          },
        },
      ]);
    },

    async feePerOperation(capStroops) {
      const bid = await firstAnswer('fee_stats', [
        ...horizons.map(({ path, server }) => ({
          path,
          run: async () => {
            const stats = await server.feeStats();
            // When ledgers are (nearly) full, inclusion goes to the highest bids: outbid most of
            // what others offer. Otherwise pay what was recently charged.
            if (Number(stats.ledger_capacity_usage) >= surgeCapacityUsage)
              return BigInt(stats.max_fee.p90) + 1n;
            const charged = BigInt(stats.fee_charged.p90);
            const base = BigInt(stats.last_ledger_base_fee);
            return charged > base ? charged : base;
          },
        })),
        { path: rpcPath, run: async () => BigInt((await rpcServer.getFeeStats()).inclusionFee.p90) },
      ]).catch((error: unknown) => {
        logger.warn({ err: error }, 'no fee statistics: bidding the base fee');
        return baseFeeStroops;
      });
      const floor = bid > baseFeeStroops ? bid : baseFeeStroops;
      return floor < capStroops ? floor : capStroops;
    },

    async submit(envelopeXdr) {
      try {
        return await firstAnswer('submit', [
          ...horizons.map(({ path, server }) => ({
            path,
            run: () => horizonSubmit(server, path, envelopeXdr),
          })),
          { path: rpcPath, run: () => rpcSubmit(envelopeXdr) },
        ]);
      } catch (error) {
        // A request that may have reached the network is ambiguous, never "not sent".
        if (error instanceof NoPathAnswered && !error.maybeSent)
          return { kind: 'unavailable', reason: error.message };
        return { kind: 'ambiguous', reason: describe(error) };
      }
    },

    // No question is asked: every path is tried until one has the transaction, and a "not found"
    // is reported from the path that had ingested furthest, which the engine judges against the
    // transaction's window (windowClosed). A lagging first Horizon can then neither hide an applied
    // transaction nor keep a closed window open. The cost, measured in requests: a transaction not
    // yet in a ledger is asked of every path (2 per Horizon, 1 for RPC) instead of the first.
    async lookup(hash): Promise<LookupOutcome> {
      const found = await lookupTransaction(readPaths, hash, {
        run: (readPath, work) => onPath(pathOf(readPath), 'lookup', work),
        timeoutMs: requestTimeoutMs,
      });
      if (found.kind === 'found') return appliedOutcome(found.transaction);
      const furthest = found.kind === 'absent' ? found.ingested : found.behind[0]?.ingested;
      if (furthest !== undefined) return { kind: 'not_found', latest: furthest };
      return { kind: 'unknown', reason: found.misses.map((miss) => miss.error).join('; ') };
    },

    paths: () =>
      paths.map((path) => ({
        path: path.name,
        url: path.url,
        state: stateName(path.breaker.state),
        lastError: path.lastError ?? null,
      })),

    // One readiness check per path, probing it (Horizon root, RPC getHealth). Payouts wait while
    // Stellar is unreachable and the API still serves, so none of them is critical.
    healthChecks: () => [
      ...horizons.map(({ path, server }) =>
        pathCheck(path, () => onPath(path, 'health', () => server.root())),
      ),
      pathCheck(rpcPath, () => onPath(rpcPath, 'health', () => rpcServer.getHealth())),
    ],
  };
}

/** A transaction found in a ledger, as the engine reads it. */
function appliedOutcome(
  transaction: ChainTransaction,
): { kind: 'success'; ledger: number } | { kind: 'failed'; ledger: number; codes: ResultCodes } {
  return transaction.successful
    ? { kind: 'success', ledger: transaction.ledger }
    : { kind: 'failed', ledger: transaction.ledger, codes: resultCodesFromXdr(transaction.resultXdr) };
}

function pathCheck(path: Path, probe: () => Promise<unknown>): DependencyCheck {
  return {
    name: `stellar-${path.name}`,
    critical: false,
    check: async (): Promise<CheckResult> => {
      try {
        await probe();
        return { status: 'ok' };
      } catch (error) {
        return { status: 'down', detail: `${path.url}: ${describe(error)}` };
      }
    },
  };
}

/** A request that outlives its limit is abandoned (it may still have been sent: `maybe_sent`). */
async function withTimeout<T>(work: Promise<T>, limitMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'message' in error) return String(error.message);
  return String(error);
}
