import { mkdtemp } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { assert } from '../platform/assert.ts';
import type { RequestContext, Route, Sandbox } from './context.ts';
import { matchRoute } from './context.ts';
import { controlRoutes } from './control.ts';
import { type Fault, FaultRegistry, type FaultSpec } from './faults.ts';
import { horizonRoutes } from './horizon.ts';
import { BodyTooLargeError, injectedError, notFound, readBody, sendJson, sendProblem } from './http.ts';
import {
  horizonListenersDefault,
  ledgerCapacityOpsDefault,
  ledgerCloseMsDefault,
  networkPassphraseDefault,
  submissionTimeoutMsDefault,
} from './limits.ts';
import { Network } from './network.ts';
import { claimDataDir, publishAddress, SandboxPortInUseError } from './ownership.ts';
import type { LedgerRecord } from './records.ts';
import { handleRpc, parseRpcRequest } from './rpc.ts';
import { fileStore } from './store.ts';

export type SandboxOptions = {
  dataDir?: string;
  ledgerCloseMs?: number;
  ledgerCapacityOps?: number;
  horizonListeners?: number;
  host?: string;
  /** Port of the first Horizon listener; the others and the control listener take free ports. */
  port?: number;
  submissionTimeoutMs?: number;
  networkPassphrase?: string;
  seed?: number;
  logger?: Logger;
};

export type SandboxFaults = {
  add(spec: FaultSpec): Fault;
  list(): Fault[];
  remove(id: string): boolean;
  clear(): number;
};

export type RunningSandbox = {
  horizonUrls: string[];
  rpcUrl: string;
  controlUrl: string;
  friendbotUrl: string;
  networkPassphrase: string;
  rootAccountId: string;
  network: Network;
  /** Closes a ledger now; undefined while a freeze_ledgers fault holds ledger closing. */
  closeLedger(): Promise<LedgerRecord | undefined>;
  faults: SandboxFaults;
  stop(): Promise<void>;
};

const listenersMax = 8;
/** Only routes that accept a transaction can accept it and then time out. */
const submissionRoutes = new Set([
  'horizon.submit',
  'horizon.submit_async',
  'horizon.friendbot',
  'rpc.sendTransaction',
]);

type Listener = { index: number; port: number; server: Server | undefined; sockets: Set<Socket> };

/** Starts the sandbox network. Everything it opens is closed again by `stop()`. */
export async function startSandbox(options: SandboxOptions = {}): Promise<RunningSandbox> {
  const listenerCount = options.horizonListeners ?? horizonListenersDefault;
  assert(
    Number.isInteger(listenerCount) && listenerCount >= 1 && listenerCount <= listenersMax,
    `horizonListeners must be between 1 and ${listenersMax}`,
  );
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'settledesk-sandbox-')));
  const release = await claimDataDir(dataDir);
  try {
    return await serveNetwork(options, dataDir, release);
  } catch (error) {
    await release();
    throw error;
  }
}

async function serveNetwork(
  options: SandboxOptions,
  dataDir: string,
  release: () => Promise<void>,
): Promise<RunningSandbox> {
  const host = options.host ?? '127.0.0.1';
  const listenerCount = options.horizonListeners ?? horizonListenersDefault;
  const store = fileStore(dataDir);
  const networkOptions = {
    networkPassphrase: options.networkPassphrase ?? networkPassphraseDefault,
    ledgerCapacityOps: options.ledgerCapacityOps ?? ledgerCapacityOpsDefault,
    clock: Date.now,
  };
  const network = new Network(networkOptions, await store.load());
  const faults = new FaultRegistry(options.seed ?? 1);
  const persistence = persister(() => store.save(network.snapshot()), options.logger);
  const sandbox: Sandbox = {
    network,
    faults,
    submissionTimeoutMs: options.submissionTimeoutMs ?? submissionTimeoutMsDefault,
    visibleLedger: (listener) => {
      const lag = faults.has('stale_ingestion', { listener })?.lagLedgers ?? 0;
      return Math.max(network.oldestLedger().sequence, network.latestLedger().sequence - lag);
    },
    whenPersisted: () => persistence.settled(),
    hangs: new Set(),
  };

  const closeLedger = async (): Promise<LedgerRecord | undefined> => {
    if (faults.fire('freeze_ledgers', {})) return undefined;
    const ledger = network.closeLedger();
    await persistence.save();
    return ledger;
  };

  const listeners: Listener[] = [];
  const urlOf = (port: number) => `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let controlListener: Listener | undefined;
  let rpcListener: Listener | undefined;
  const routes = [...horizonRoutes];
  const control = controlRoutes({
    closeLedger: async () => closeLedger(),
    status: () => ({
      latestLedger: network.latestLedger().sequence,
      pendingTransactions: network.pendingCount(),
      horizonUrls: listeners.map((listener) => urlOf(listener.port)),
      faults: faults.list(),
    }),
  });

  const handler =
    (index: number, mode: ListenerMode) => (request: IncomingMessage, response: ServerResponse) =>
      void serve(sandbox, { routes, control, index, mode, logger: options.logger }, request, response);

  const open = async (listener: Listener, mode: ListenerMode) => {
    const server = createServer(handler(listener.index, mode));
    server.on('connection', (socket) => {
      listener.sockets.add(socket);
      socket.on('close', () => listener.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'EADDRINUSE'
            ? new SandboxPortInUseError(
                `port ${listener.port} is in use: choose another with SANDBOX_PORT (0 picks a free one) or point settledesk at a running network with STELLAR_HORIZON_URLS`,
              )
            : error,
        ),
      );
      server.listen(listener.port, host, () => resolve());
    });
    listener.port = (server.address() as AddressInfo).port;
    listener.server = server;
  };
  const shut = async (listener: Listener) => {
    const { server } = listener;
    if (server === undefined) return;
    listener.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of listener.sockets) socket.destroy();
    await closed;
  };

  try {
    for (let index = 0; index < listenerCount; index += 1) {
      const listener: Listener = {
        index,
        port: index === 0 ? (options.port ?? 0) : 0,
        server: undefined,
        sockets: new Set(),
      };
      await open(listener, 'horizon');
      listeners.push(listener);
    }
    controlListener = { index: -1, port: 0, server: undefined, sockets: new Set() };
    await open(controlListener, 'control');
    // Stellar RPC has a listener of its own, so that taking every Horizon down leaves RPC serving,
    // as on a real deployment where they are separate services.
    rpcListener = { index: rpcListenerIndex, port: 0, server: undefined, sockets: new Set() };
    await open(rpcListener, 'rpc');
  } catch (error) {
    // The ports already bound are released with the failure, not kept until the process exits.
    for (const listener of [...listeners, controlListener]) if (listener) await shut(listener);
    throw error;
  }

  // A listener_down fault closes that listener's port (clients get connection refused) and its
  // open connections; when the fault ends the listener binds the same port again.
  let reconciling = Promise.resolve();
  const reconcile = () => {
    reconciling = reconciling.then(async () => {
      for (const listener of listeners) {
        const down = faults.has('listener_down', { listener: listener.index }) !== undefined;
        if (down && listener.server) await shut(listener);
        if (!down && !listener.server && !stopped) await open(listener, 'horizon');
      }
      if (faults.list().every((fault) => fault.kind !== 'hang')) releaseHangs(sandbox);
    });
  };
  const offFaults = faults.onChange(reconcile);

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const closeMs = options.ledgerCloseMs ?? ledgerCloseMsDefault;
  const tick = () => {
    timer = setTimeout(() => {
      closeLedger()
        .catch((error: unknown) => options.logger?.error({ err: error }, 'sandbox ledger close failed'))
        .finally(() => {
          if (!stopped) tick();
        });
    }, closeMs);
  };
  tick();

  const horizonUrls = listeners.map((listener) => urlOf(listener.port));
  const first = horizonUrls[0] ?? '';
  const address = {
    horizonUrls,
    rpcUrl: `${urlOf(rpcListener.port)}/rpc`,
    controlUrl: `${urlOf(controlListener.port)}/_sandbox`,
    friendbotUrl: `${first}/friendbot`,
    networkPassphrase: network.networkPassphrase,
  };
  await publishAddress(dataDir, address);
  options.logger?.info({ ...address, dataDir }, 'sandbox network started');
  return {
    ...address,
    rootAccountId: network.rootAccountId,
    network,
    closeLedger,
    faults: {
      add: (spec) => faults.add(spec),
      list: () => faults.list(),
      remove: (id) => faults.remove(id),
      clear: () => faults.clear(),
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      offFaults();
      await reconciling;
      releaseHangs(sandbox);
      for (const listener of [...listeners, controlListener, rpcListener]) if (listener) await shut(listener);
      await persistence.save();
      await release();
    },
  };
}

function releaseHangs(sandbox: Sandbox): void {
  for (const response of sandbox.hangs) response.socket?.destroy();
  sandbox.hangs.clear();
}

/** Serialises saves: at most one write in flight and one queued, whatever the close rate. */
function persister(save: () => Promise<void>, logger: Logger | undefined) {
  let current = Promise.resolve();
  let queued: Promise<void> | undefined;
  const run = () =>
    save().catch((error: unknown) => {
      logger?.error({ err: error }, 'sandbox state could not be saved');
    });
  return {
    save(): Promise<void> {
      if (queued) return queued;
      queued = current.then(() => {
        queued = undefined;
        return run();
      });
      current = queued;
      return queued;
    },
    settled(): Promise<void> {
      return queued ?? current;
    },
  };
}

type ServeSetup = {
  routes: Route[];
  control: Route[];
  index: number;
  mode: ListenerMode;
  logger: Logger | undefined;
};

/** Horizon listeners also answer `/rpc`; the RPC listener answers only `/rpc`; the control listener only `/_sandbox`. */
type ListenerMode = 'horizon' | 'rpc' | 'control';
const rpcListenerIndex = -2;

async function serve(
  sandbox: Sandbox,
  setup: ServeSetup,
  request: IncomingMessage,
  response: ServerResponse,
) {
  try {
    const url = new URL(request.url ?? '/', 'http://sandbox.invalid');
    const base = `http://${request.headers.host ?? 'localhost'}`;
    const body = request.method === 'POST' ? await readBody(request) : '';
    const path = url.pathname;
    if (path.startsWith('/_sandbox'))
      return await dispatchControl(sandbox, setup, { request, response, url, base, body });
    if (setup.mode === 'control') return sendProblem(response, notFound());
    if (setup.mode === 'rpc' && path.replace(/\/$/, '') !== '/rpc') return sendProblem(response, notFound());
    await dispatchNetwork(sandbox, setup, { request, response, url, base, body });
  } catch (error) {
    if (error instanceof BodyTooLargeError) {
      return sendJson(
        response,
        413,
        { status: 413, title: 'Request Entity Too Large' },
        'application/problem+json',
      );
    }
    setup.logger?.error({ err: error }, 'sandbox request failed');
    sendProblem(response, injectedError(500));
  }
}

type Incoming = { request: IncomingMessage; response: ServerResponse; url: URL; base: string; body: string };

async function dispatchControl(sandbox: Sandbox, setup: ServeSetup, incoming: Incoming) {
  const found = matchRoute(setup.control, incoming.request.method ?? 'GET', incoming.url.pathname);
  if (!found) return sendProblem(incoming.response, notFound());
  const context: RequestContext = {
    sandbox,
    ...incoming,
    listener: setup.index,
    route: found.route.name,
    acceptedTimeout: undefined,
  };
  await found.route.handle(context, found.params);
}

async function dispatchNetwork(sandbox: Sandbox, setup: ServeSetup, incoming: Incoming) {
  const method = incoming.request.method ?? 'GET';
  const isRpc = incoming.url.pathname.replace(/\/$/, '') === '/rpc';
  const rpcRequest = isRpc && method === 'POST' ? parseRpcRequest(incoming.body) : undefined;
  const found = isRpc ? undefined : matchRoute(setup.routes, method, incoming.url.pathname);
  const route = isRpc ? `rpc.${rpcRequest?.method ?? 'invalid'}` : found?.route.name;
  if (route === undefined || (!found && !isRpc)) return sendProblem(incoming.response, notFound());
  const scope = { route, listener: setup.index };
  const { faults } = sandbox;
  const latency = faults.fire('latency', scope);
  if (latency?.latencyMs) await new Promise((resolve) => setTimeout(resolve, latency.latencyMs));
  if (faults.fire('hang', scope)) {
    sandbox.hangs.add(incoming.response);
    incoming.response.on('close', () => sandbox.hangs.delete(incoming.response));
    return;
  }
  const error = faults.fire('http_error', scope);
  if (error?.status) return sendProblem(incoming.response, injectedError(error.status));
  const context: RequestContext = {
    sandbox,
    ...incoming,
    listener: setup.index,
    route,
    acceptedTimeout: submissionRoutes.has(route) ? faults.fire('accepted_timeout', scope) : undefined,
  };
  if (isRpc) {
    if (rpcRequest === undefined) {
      return sendJson(
        incoming.response,
        200,
        { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'invalid request' } },
        'application/json',
      );
    }
    return handleRpc(context, rpcRequest);
  }
  if (found) await found.route.handle(context, found.params);
}
