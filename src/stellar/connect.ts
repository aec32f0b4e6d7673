import { join } from 'node:path';
import type { Config } from '../platform/config.ts';
import { OperatingError } from '../platform/errors.ts';
import type { Logger } from '../platform/logging.ts';
import { networkPassphraseDefault } from '../sandbox/limits.ts';
import { findRunningSandbox } from '../sandbox/ownership.ts';
import { type RunningSandbox, startSandbox } from '../sandbox/server.ts';
import { publicEndpoints, type StellarEndpoints } from './endpoints.ts';

/**
 * Resolves the Stellar network a process talks to. Configured URLs win; otherwise testnet and
 * mainnet use the public endpoints, and the sandbox is the one `serve` runs in-process from the
 * data folder (other commands find it through the address it publishes there).
 */

export type StellarConnection = {
  endpoints: StellarEndpoints;
  /** Set when this process runs the sandbox network itself. */
  sandbox: RunningSandbox | undefined;
  close(): Promise<void>;
};

export function sandboxDataDir(config: Config): string {
  return join(config.dataDir, 'sandbox');
}

/** The endpoints fixed by configuration alone; undefined means "the local sandbox". */
export function configuredEndpoints(config: Config): StellarEndpoints | undefined {
  const { network, horizonUrls, rpcUrl, networkPassphrase } = config.stellar;
  if (network === 'sandbox') {
    if (horizonUrls === undefined) return undefined;
    const first = horizonUrls[0] ?? '';
    return {
      network,
      horizonUrls,
      rpcUrl: rpcUrl ?? `${first}/rpc`,
      networkPassphrase: networkPassphrase ?? networkPassphraseDefault,
      friendbotUrl: `${first}/friendbot`,
      controlUrl: undefined,
    };
  }
  const known = publicEndpoints[network];
  return {
    ...known,
    horizonUrls: horizonUrls ?? known.horizonUrls,
    rpcUrl: rpcUrl ?? known.rpcUrl,
    networkPassphrase: networkPassphrase ?? known.networkPassphrase,
  };
}

function sandboxEndpoints(sandbox: Omit<StellarEndpoints, 'network'>): StellarEndpoints {
  return {
    network: 'sandbox',
    horizonUrls: sandbox.horizonUrls,
    rpcUrl: sandbox.rpcUrl,
    networkPassphrase: sandbox.networkPassphrase,
    friendbotUrl: sandbox.friendbotUrl,
    controlUrl: sandbox.controlUrl,
  };
}

/** For `serve`: uses the configured network, or starts the sandbox in this process. */
export async function openStellar(config: Config, logger: Logger): Promise<StellarConnection> {
  const configured = configuredEndpoints(config);
  if (configured) return { endpoints: configured, sandbox: undefined, close: async () => {} };
  const sandbox = await startSandbox({
    dataDir: sandboxDataDir(config),
    port: config.sandbox.port,
    horizonListeners: config.sandbox.horizonListeners,
    ledgerCloseMs: config.sandbox.ledgerCloseMs,
    logger,
  });
  return { endpoints: sandboxEndpoints(sandbox), sandbox, close: () => sandbox.stop() };
}

/** For every other command: the configured network, or the sandbox a running `serve` published. */
export async function findStellar(config: Config): Promise<StellarEndpoints> {
  const configured = configuredEndpoints(config);
  if (configured) return configured;
  const running = await findRunningSandbox(sandboxDataDir(config));
  if (running === undefined) {
    throw new OperatingError(
      `no sandbox network is running for ${config.dataDir}: start settledesk (npm start) or \`settledesk sandbox\`, or set STELLAR_HORIZON_URLS`,
    );
  }
  return sandboxEndpoints(running);
}
