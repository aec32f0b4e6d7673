import { randomUUID } from 'node:crypto';
import { Keypair } from '@stellar/stellar-sdk';
import type { SettlementChain } from '../../src/payouts/chain.ts';
import { type EngineOptions, SettlementEngine } from '../../src/payouts/engine.ts';
import type { Role } from '../../src/platform/auth/roles.ts';
import { createLogger } from '../../src/platform/logging.ts';
import type { SandboxOptions } from '../../src/sandbox/server.ts';
import { startTestNetwork, type TestNetwork } from '../../src/sandbox/test-support.ts';
import { ensureChannels } from '../../src/stellar/channels.ts';
import type { StellarEndpoints } from '../../src/stellar/endpoints.ts';
import { createSettlementChain, type StellarChain } from '../../src/stellar/settlement-chain.ts';
import type { Wallet } from '../../src/stellar/wallet.ts';
import { deadlockRetries, fundFromFees } from './ledger.ts';
import { startTestService, type TestService } from './service.ts';

/** A service on its own database, a sandbox network, a funded wallet and an engine driven round by round. */
export type PayoutHarness = {
  service: TestService;
  network: TestNetwork;
  endpoints: StellarEndpoints;
  wallet: Wallet;
  chain: StellarChain;
  engine: SettlementEngine;
  /** An engine like `engine` (same wallet, channels and options) reading the chain through `chain`. */
  engineWith(chain: SettlementChain): SettlementEngine;
  customer(amountMinor: bigint): Promise<string>;
  pay(input: {
    source: string;
    destination: string;
    amount: string;
    asset?: string;
    memo?: { type: string; value?: string };
  }): Promise<{
    statusCode: number;
    body: Record<string, unknown>;
  }>;
  states(ids: readonly string[]): Promise<Record<string, string>>;
  /** Runs rounds (of `engine`, by default the harness's) until `done` holds; fails after `timeoutMs`. */
  settleUntil(done: () => Promise<boolean>, timeoutMs?: number, engine?: SettlementEngine): Promise<void>;
  balance(type: string): Promise<bigint>;
  close(): Promise<void>;
};

/** Calls the service as `subject` with `role`; a POST carries a fresh Idempotency-Key. */
export async function callAs(
  service: TestService,
  method: 'GET' | 'POST',
  url: string,
  role: Role,
  subject: string,
  payload?: object,
) {
  const response = await service.app.inject({
    method,
    url,
    payload,
    headers: {
      authorization: `Bearer ${await service.token(role, subject)}`,
      ...(method === 'POST' ? { 'idempotency-key': randomUUID() } : {}),
    },
  });
  return { statusCode: response.statusCode, body: response.json() };
}

/** Set SETTLEDESK_TEST_LOG=debug to see the engine's log lines while a test runs. */
export const silentLogger = createLogger(
  process.env.SETTLEDESK_TEST_LOG === 'debug' ? 'debug' : 'silent',
  process.stderr,
);

export function endpointsOf(network: TestNetwork): StellarEndpoints {
  return {
    network: 'sandbox',
    horizonUrls: network.sandbox.horizonUrls,
    rpcUrl: network.sandbox.rpcUrl,
    networkPassphrase: network.sandbox.networkPassphrase,
    friendbotUrl: network.sandbox.friendbotUrl,
    controlUrl: network.sandbox.controlUrl,
  };
}

export async function startPayoutHarness(
  options: {
    sandbox?: SandboxOptions;
    engine?: Partial<EngineOptions>;
    channels?: number;
    /** More environment for the service (e.g. PAYOUT_APPROVAL_THRESHOLDS). */
    env?: Record<string, string>;
  } = {},
): Promise<PayoutHarness> {
  const network = await startTestNetwork({
    ledgerCloseMs: 100,
    submissionTimeoutMs: 2_000,
    ...options.sandbox,
  });
  const endpoints = endpointsOf(network);
  const wallet: Wallet = {
    hotWallet: Keypair.random(),
    channels: Array.from({ length: options.channels ?? 2 }, () => Keypair.random()),
  };
  // The API knows the same wallet and reads the same network, as in a deployment.
  const service = await startTestService({
    stellar: endpoints,
    env: {
      STELLAR_HOT_WALLET_SECRET: wallet.hotWallet.secret(),
      STELLAR_CHANNEL_SECRETS: wallet.channels.map((channel) => channel.secret()).join(','),
      ...options.env,
    },
  });
  await ensureChannels(endpoints, wallet, ['XLM']);
  const chain = createSettlementChain(endpoints, silentLogger);
  const engineOptions: EngineOptions = {
    hotWallet: wallet.hotWallet,
    channels: wallet.channels,
    networkPassphrase: endpoints.networkPassphrase,
    batchSizeMax: 100,
    windowSeconds: 5,
    windowLedgers: 20,
    feeCapStroops: 10_000n,
    resubmitAfterMs: 500,
    manualReviewAfterMs: 60_000,
    logger: silentLogger,
    ...options.engine,
  };
  const engine = new SettlementEngine(service.db.sql, chain, engineOptions);
  await engine.registerChannels();
  const sql = service.db.sql;
  return {
    service,
    network,
    endpoints,
    wallet,
    chain,
    engine,
    engineWith: (other) => new SettlementEngine(service.db.sql, other, engineOptions),
    customer: async (amountMinor) => {
      const [row] = await sql<
        { id: string }[]
      >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
      const id = row?.id ?? '';
      await fundFromFees(sql, id, amountMinor);
      return id;
    },
    pay: async (input) => {
      const response = await service.app.inject({
        method: 'POST',
        url: '/v1/payouts',
        payload: {
          sourceAccountId: input.source,
          destination: input.destination,
          asset: input.asset ?? 'XLM',
          amount: input.amount,
          ...(input.memo ? { memo: input.memo } : {}),
        },
        headers: {
          authorization: `Bearer ${await service.token('service', 'merchant-app')}`,
          'idempotency-key': randomUUID(),
        },
      });
      return { statusCode: response.statusCode, body: response.json() };
    },
    states: async (ids) => {
      const rows = await sql<
        { id: string; state: string }[]
      >`select id, state from payouts where id = any(${ids as string[]}::uuid[])`;
      return Object.fromEntries(rows.map((row) => [row.id, row.state]));
    },
    settleUntil: async (done, timeoutMs = 20_000, driven = engine) => {
      const deadline = Date.now() + timeoutMs;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`not settled within ${timeoutMs} ms`);
        await driven.runRound();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    balance: async (type) => {
      const [row] = await sql<
        { balance: bigint }[]
      >`select balance_minor as balance from accounts where type = ${type} and asset = 'XLM'`;
      return row?.balance ?? 0n;
    },
    close: async () => {
      const deadlocks = await deadlockRetries();
      await service.close();
      await network.stop();
      // Every file that settles payouts checks it: no money transaction deadlocked on another.
      if (deadlocks > 0) {
        throw new Error(
          `${deadlocks} transactions were retried after a deadlock (40P01): see docs/ledger.md, Lock order`,
        );
      }
    },
  };
}
