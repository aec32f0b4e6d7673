import { assert } from '../platform/assert.ts';
import { classifyRead, type ReadFailureClass } from './classify.ts';
import type { StellarEndpoints } from './endpoints.ts';

/**
 * The one way settledesk reads the Stellar network. Paths are asked in a fixed order: every Horizon
 * as configured, then Stellar RPC. A path that fails, or answers "not found" without having
 * ingested the ledgers the question is about, hands over to the next path: "not found" is final
 * only from a path that covers the question (see `covers`). What a failure means (retryable or
 * terminal) is decided in classify.ts. The settlement chain, the on-call lookup, payment proofs and
 * the Horizon page reads all come through here.
 */

/** Bound of one request to one path when the caller sets none. */
export const readTimeoutMs = 10_000;
/** The genesis ledger (1) holds no transaction: a path holding history from ledger 2 holds it all. */
export const firstTransactionLedger = 2;

export type ReadPath = { name: string; kind: 'horizon' | 'rpc'; url: string };

export function readPathsOf(endpoints: Pick<StellarEndpoints, 'horizonUrls' | 'rpcUrl'>): ReadPath[] {
  return [
    ...endpoints.horizonUrls.map((url, index) => ({
      name: `horizon-${index}`,
      kind: 'horizon' as const,
      url,
    })),
    { name: 'rpc', kind: 'rpc', url: endpoints.rpcUrl },
  ];
}

/** How far a path had ingested when it answered: latest ledger, its close time, oldest ledger held. */
export type Ingested = { sequence: number; closeTime: number; oldest: number };

/**
 * What a path must have ingested for its "not found" to be final: the ledger `throughLedger`, or a
 * ledger closed at or after `throughTime` (unix seconds), and history back to `sinceLedger`. A path
 * behind either bound cannot prove absence: the transaction may be in a ledger it has not seen.
 */
export type Question = { throughLedger?: number; throughTime?: number; sinceLedger?: number };

export function covers(ingested: Ingested, question: Question): boolean {
  if (question.sinceLedger !== undefined && ingested.oldest > question.sinceLedger) return false;
  if (question.throughLedger !== undefined && ingested.sequence < question.throughLedger) return false;
  if (question.throughTime !== undefined && ingested.closeTime < question.throughTime) return false;
  return true;
}

export type ChainTransaction = {
  hash: string;
  successful: boolean;
  ledger: number;
  /** The transaction's id in Horizon's order (toid): its operations are `pagingToken + 1`, `+ 2`, … */
  pagingToken: bigint;
  envelopeXdr: string;
  resultXdr: string;
};

/** One path's answer to "where is this transaction". */
export type PathAnswer =
  | { kind: 'found'; transaction: ChainTransaction }
  | { kind: 'not_found'; ingested: Ingested };

/** A path that gave no usable answer, and whether asking again may help. */
export type Miss = { path: string; error: string; failure: ReadFailureClass };

export type TransactionLookup =
  | { kind: 'found'; path: string; transaction: ChainTransaction; misses: Miss[] }
  /** Final: `path` covered the question and does not have it. */
  | { kind: 'absent'; path: string; ingested: Ingested; misses: Miss[] }
  /**
   * Nobody has it and nobody could prove it absent. `behind`: the paths that answered "not found"
   * without covering the question, furthest ingested first; `retryable`: whether asking later may
   * decide (a path was behind, or a failure was retryable).
   */
  | {
      kind: 'undecided';
      behind: { path: string; ingested: Ingested }[];
      misses: Miss[];
      retryable: boolean;
    };

/** Runs one request on one path; the settlement chain passes its breakers and metrics here. */
export type PathRunner = (path: ReadPath, work: () => Promise<PathAnswer>) => Promise<PathAnswer>;

/** Thrown for an HTTP status that is not an answer (shaped like the SDK's errors, for classify.ts). */
export class StellarHttpError extends Error {
  override name = 'StellarHttpError';
  readonly response: { status: number };
  constructor(url: string, status: number) {
    super(`${url} answered ${status}`);
    this.response = { status };
  }
}

/** A JSON-RPC error object: an answer from the server, and a refusal. */
export class StellarRpcError extends Error {
  override name = 'StellarRpcError';
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** A body that is not what the path's API documents: the path is broken, another may not be. */
export class StellarMalformedAnswer extends Error {
  override name = 'StellarMalformedAnswer';
}

export function describeReadError(error: unknown, timeoutMs = readTimeoutMs): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}

const notFound = Symbol('not found');

async function requestJson(
  url: string,
  timeoutMs: number,
  init: RequestInit = {},
): Promise<unknown | typeof notFound> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  if (response.status === 404) return notFound;
  if (!response.ok) throw new StellarHttpError(url, response.status);
  return response.json();
}

/** GET a Horizon document; a 404 is `undefined` (what it means is the caller's to decide). */
export async function horizonGet(url: string, timeoutMs = readTimeoutMs): Promise<unknown> {
  const body = await requestJson(url, timeoutMs);
  return body === notFound ? undefined : body;
}

type HorizonRoot = {
  history_latest_ledger: number;
  history_latest_ledger_closed_at: string;
  history_elder_ledger: number;
};

type HorizonTransaction = {
  hash: string;
  successful: boolean;
  ledger: number;
  paging_token: string;
  envelope_xdr: string;
  result_xdr: string;
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export async function horizonIngested(base: string, timeoutMs = readTimeoutMs): Promise<Ingested> {
  const root = (await horizonGet(`${base}/`, timeoutMs)) as HorizonRoot | undefined;
  if (!isRecord(root) || typeof root.history_latest_ledger !== 'number')
    throw new StellarMalformedAnswer(`${base}/ is not a Horizon root document`);
  return {
    sequence: root.history_latest_ledger,
    closeTime: Math.floor(Date.parse(root.history_latest_ledger_closed_at) / 1_000),
    oldest: root.history_elder_ledger,
  };
}

async function horizonTransaction(base: string, hash: string, timeoutMs: number): Promise<PathAnswer> {
  // How far it has ingested first: a "not found" that follows covers every ledger up to it.
  const ingested = await horizonIngested(base, timeoutMs);
  const body = (await horizonGet(`${base}/transactions/${hash}`, timeoutMs)) as
    | HorizonTransaction
    | undefined;
  if (body === undefined) return { kind: 'not_found', ingested };
  if (!isRecord(body) || typeof body.envelope_xdr !== 'string')
    throw new StellarMalformedAnswer(`${base}/transactions/${hash} is not a transaction`);
  return {
    kind: 'found',
    transaction: {
      hash: body.hash,
      successful: body.successful,
      ledger: body.ledger,
      pagingToken: BigInt(body.paging_token),
      envelopeXdr: body.envelope_xdr,
      resultXdr: body.result_xdr,
    },
  };
}

type RpcTransaction = {
  status: 'SUCCESS' | 'FAILED' | 'NOT_FOUND';
  latestLedger: number;
  latestLedgerCloseTime: string;
  oldestLedger: number;
  ledger?: number;
  applicationOrder?: number;
  envelopeXdr?: string;
  resultXdr?: string;
};

async function rpcTransaction(url: string, hash: string, timeoutMs: number): Promise<PathAnswer> {
  const body = await requestJson(url, timeoutMs, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'getTransaction', params: { hash } }),
  });
  if (body === notFound) throw new StellarHttpError(url, 404);
  const { result, error } = body as { result?: RpcTransaction; error?: { code?: number; message?: string } };
  if (error !== undefined) throw new StellarRpcError(error.code ?? 0, error.message ?? 'JSON-RPC error');
  if (!isRecord(result) || typeof result.latestLedger !== 'number')
    throw new StellarMalformedAnswer(`${url} getTransaction: no result`);
  const ingested = {
    sequence: result.latestLedger,
    closeTime: Number(result.latestLedgerCloseTime),
    oldest: result.oldestLedger,
  };
  if (result.status === 'NOT_FOUND') return { kind: 'not_found', ingested };
  const { ledger, applicationOrder, envelopeXdr, resultXdr } = result;
  if (ledger === undefined || applicationOrder === undefined || envelopeXdr === undefined || !resultXdr)
    throw new StellarMalformedAnswer(`${url} getTransaction: ${result.status} without its transaction`);
  return {
    kind: 'found',
    transaction: {
      hash,
      successful: result.status === 'SUCCESS',
      ledger,
      // Horizon's toid of a transaction: ledger, then order in the ledger, operation index 0.
      pagingToken: (BigInt(ledger) << 32n) | (BigInt(applicationOrder) << 12n),
      envelopeXdr,
      resultXdr,
    },
  };
}

/** Where one path has the transaction, or how far it had ingested when it did not. */
export function transactionOnPath(
  path: ReadPath,
  hash: string,
  timeoutMs = readTimeoutMs,
): Promise<PathAnswer> {
  return path.kind === 'horizon'
    ? horizonTransaction(path.url, hash, timeoutMs)
    : rpcTransaction(path.url, hash, timeoutMs);
}

/**
 * Asks each path in order until one has the transaction or one that covers `question` says it has
 * none. Without a question no "not found" is final: every path is asked, and the answer is
 * `undecided` with the paths that did not have it, furthest first (the settlement engine judges
 * those against the transaction's window itself).
 */
export async function lookupTransaction(
  paths: readonly ReadPath[],
  hash: string,
  options: { question?: Question; run?: PathRunner; timeoutMs?: number } = {},
): Promise<TransactionLookup> {
  const timeoutMs = options.timeoutMs ?? readTimeoutMs;
  const run: PathRunner = options.run ?? ((_path, work) => work());
  const misses: Miss[] = [];
  const behind: { path: string; ingested: Ingested }[] = [];
  for (const path of paths) {
    let answer: PathAnswer;
    try {
      answer = await run(path, () => transactionOnPath(path, hash, timeoutMs));
    } catch (error) {
      misses.push({
        path: path.name,
        error: describeReadError(error, timeoutMs),
        failure: classifyRead(error),
      });
      continue;
    }
    if (answer.kind === 'found')
      return { kind: 'found', path: path.name, transaction: answer.transaction, misses };
    if (options.question !== undefined && covers(answer.ingested, options.question))
      return { kind: 'absent', path: path.name, ingested: answer.ingested, misses };
    behind.push({ path: path.name, ingested: answer.ingested });
  }
  behind.sort((left, right) => right.ingested.sequence - left.ingested.sequence);
  const retryable = behind.length > 0 || misses.some((miss) => miss.failure === 'retryable');
  return { kind: 'undecided', behind, misses, retryable };
}

/**
 * Runs `read` on each Horizon in turn until one answers (page reads, whose answer carries its own
 * ingested ledger). Every failure moves on, a 404 too (a lagging Horizon may not have ingested what
 * another has); when every path fails, the last failure is thrown.
 */
export async function onEachHorizon<T>(
  urls: readonly string[],
  read: (base: string) => Promise<T>,
): Promise<T> {
  assert(urls.length > 0, 'no Horizon URL configured');
  let lastError: unknown;
  for (const base of urls) {
    try {
      return await read(base);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}
