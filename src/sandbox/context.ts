import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Fault, FaultRegistry } from './faults.ts';
import type { Network } from './network.ts';

/** What every route handler receives: the shared network and the one request being served. */

export type Sandbox = {
  network: Network;
  faults: FaultRegistry;
  submissionTimeoutMs: number;
  /** The newest ledger this Horizon listener has "ingested"; behind the network under stale ingestion. */
  visibleLedger(listener: number): number;
  /** Persists after a ledger closes; routes await it so a confirmed transaction is on disk. */
  whenPersisted(): Promise<void>;
  hangs: Set<ServerResponse>;
};

export type RequestContext = {
  sandbox: Sandbox;
  request: IncomingMessage;
  response: ServerResponse;
  url: URL;
  /** Scheme, host and port the client used, for `_links`. */
  base: string;
  listener: number;
  route: string;
  /** Set when an accepted-but-timed-out fault fired for this request. */
  acceptedTimeout: Fault | undefined;
  body: string;
};

export type Route = {
  method: 'GET' | 'POST' | 'DELETE';
  pattern: RegExp;
  name: string;
  handle(context: RequestContext, params: string[]): Promise<void> | void;
};

export function matchRoute(routes: Route[], method: string, path: string) {
  for (const route of routes) {
    if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
    const match = route.pattern.exec(path);
    if (match) return { route, params: match.slice(1) };
  }
  return undefined;
}
