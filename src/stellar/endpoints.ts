import { Networks } from '@stellar/stellar-sdk';

/**
 * Where settledesk reaches the Stellar network. With no URLs configured it settles against the
 * sandbox network it runs itself (`src/sandbox/`); testnet and mainnet are configuration.
 */

export const stellarNetworks = ['sandbox', 'testnet', 'mainnet'] as const;
export type StellarNetworkName = (typeof stellarNetworks)[number];

export type StellarEndpoints = {
  network: StellarNetworkName;
  /** Horizon base URLs in failover order. */
  horizonUrls: string[];
  /** Stellar RPC JSON-RPC endpoint. */
  rpcUrl: string;
  networkPassphrase: string;
  /** Friendbot, where the network has one (sandbox, testnet). */
  friendbotUrl: string | undefined;
  /** The sandbox control API (`/_sandbox`), only for the sandbox network. */
  controlUrl: string | undefined;
};

/** Public endpoints run by the Stellar Development Foundation; used when no URL is configured. */
export const publicEndpoints: Record<Exclude<StellarNetworkName, 'sandbox'>, StellarEndpoints> = {
  testnet: {
    network: 'testnet',
    horizonUrls: ['https://horizon-testnet.stellar.org'],
    rpcUrl: 'https://soroban-testnet.stellar.org',
    networkPassphrase: Networks.TESTNET,
    friendbotUrl: 'https://friendbot.stellar.org',
    controlUrl: undefined,
  },
  mainnet: {
    network: 'mainnet',
    horizonUrls: ['https://horizon.stellar.org'],
    rpcUrl: 'https://mainnet.sorobanrpc.com',
    networkPassphrase: Networks.PUBLIC,
    friendbotUrl: undefined,
    controlUrl: undefined,
  },
};
