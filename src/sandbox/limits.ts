import { stroopsPerUnit } from '../stellar/units.ts';
/**
 * Every constant and bound of the sandbox network in one place. Values mirror the public Stellar
 * network where settledesk depends on them (fees, reserves, queue behaviour) so that code tested
 * here behaves the same against testnet and mainnet.
 */

/** The genesis supply of the real network: 100 billion lumens, all held by the root account. */
export const totalCoinsStroops = 100_000_000_000n * stroopsPerUnit;
export const baseFeeStroops = 100n;
export const baseReserveStroops = 5_000_000n;
export const int64MaxStroops = 9_223_372_036_854_775_807n;
export const protocolVersion = 23;
export const operationsPerTransactionMax = 100;

/** Stellar Core drops a queued transaction that was not included within this many ledgers. */
export const pendingLedgersMax = 4;
/** The queue holds this many ledgers' worth of operations before answering TRY_AGAIN_LATER. */
export const queueCapacityLedgers = 4;

export const ledgerCloseMsDefault = 5_000;
export const ledgerCapacityOpsDefault = 1_000;
export const submissionTimeoutMsDefault = 30_000;
export const horizonListenersDefault = 2;
export const networkPassphraseDefault = 'settledesk sandbox network ; 2026';

export const friendbotStartingBalanceStroops = 10_000n * stroopsPerUnit;

export const pageLimitDefault = 10;
export const pageLimitMax = 200;
/** Horizon computes fee statistics over the last five ledgers. */
export const feeStatsLedgerWindow = 5;
/** Stale ingestion can lag at most this many ledgers; older entry versions are forgotten. */
export const staleLagLedgersMax = 64;
export const entryVersionsMax = staleLagLedgersMax + 1;

export const requestBodyBytesMax = 256 * 1024;
export const streamClientsMax = 1_000;
export const faultsMax = 100;
export const faultDurationMsMax = 24 * 60 * 60 * 1_000;
export const faultLatencyMsMax = 120_000;
