/**
 * The one place that decides what a failed request to Stellar means for money:
 * - `answered`: the server understood the request and said no (a 4xx such as 400 or 404); the
 *   caller reads the answer;
 * - `refused`: the request certainly did not reach the network (connection refused, no route, a
 *   503 or 429 that Horizon and RPC send before doing anything); another path may be tried;
 * - `maybe_sent`: anything else (reset, timeout, 500, 502, 504): a submission may have been taken,
 *   so its outcome is ambiguous until the hash is looked up.
 */

export type TransportClass = 'answered' | 'refused' | 'maybe_sent';

const refusedCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

/**
 * What a failed read means for the caller, whatever the path: `terminal` when the server
 * understood the request and refused it (a 4xx other than 404 and 429, a JSON-RPC error): asking
 * again will not change the answer; `retryable` for everything else (refused, reset, timeout, a
 * 5xx, a malformed answer): the same read may succeed later or on another path. A 404 is not a
 * failure of a read: the read module decides what "not found" proves.
 */
export type ReadFailureClass = 'retryable' | 'terminal';

export function classifyRead(error: unknown): ReadFailureClass {
  return classifyTransport(error) === 'answered' ? 'terminal' : 'retryable';
}

export function classifyTransport(error: unknown): TransportClass {
  // fetch's own timeout and abort (a DOMException, whose numeric `code` is no server's answer).
  const name = field(error, 'name');
  if (name === 'TimeoutError' || name === 'AbortError') return 'maybe_sent';
  // A JSON-RPC error object ({code, message}) is an answer from the server.
  if (typeof field(error, 'code') === 'number' && typeof field(error, 'message') === 'string')
    return 'answered';
  const status = field(field(error, 'response'), 'status');
  if (typeof status === 'number') {
    if (status === 503 || status === 429) return 'refused';
    if (status >= 500) return 'maybe_sent';
    return 'answered';
  }
  const code = field(error, 'code') ?? field(field(error, 'cause'), 'code');
  if (typeof code === 'string' && refusedCodes.has(code)) return 'refused';
  return 'maybe_sent';
}
