import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Asset, Horizon, Keypair, Operation, rpc, TransactionBuilder } from '@stellar/stellar-sdk';
import { type RunningSandbox, type SandboxOptions, startSandbox } from './server.ts';

/** Shared set-up for the sandbox tests: a sandbox in a temporary folder and SDK clients on it. */

export type TestNetwork = {
  sandbox: RunningSandbox;
  horizon: Horizon.Server;
  rpcServer: rpc.Server;
  dataDir: string;
  stop(options?: { keepData?: boolean }): Promise<void>;
};

export async function startTestNetwork(options: SandboxOptions = {}): Promise<TestNetwork> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'sandbox-test-')));
  const sandbox = await startSandbox({ ledgerCloseMs: 100, submissionTimeoutMs: 5_000, ...options, dataDir });
  return {
    sandbox,
    dataDir,
    horizon: new Horizon.Server(sandbox.horizonUrls[0] ?? '', { allowHttp: true }),
    rpcServer: new rpc.Server(sandbox.rpcUrl, { allowHttp: true }),
    stop: async ({ keepData = false } = {}) => {
      await sandbox.stop();
      if (!keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function fund(network: TestNetwork, keypair = Keypair.random()): Promise<Keypair> {
  const response = await fetch(`${network.sandbox.friendbotUrl}?addr=${keypair.publicKey()}`);
  if (response.status !== 200)
    throw new Error(`friendbot answered ${response.status}: ${await response.text()}`);
  return keypair;
}

export type BuildOptions = { fee?: string; timeoutSeconds?: number };

export async function paymentTransaction(
  network: TestNetwork,
  source: Keypair,
  destination: string,
  amount: string,
  options: BuildOptions = {},
) {
  const account = await network.horizon.loadAccount(source.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: options.fee ?? '100',
    networkPassphrase: network.sandbox.networkPassphrase,
  })
    .addOperation(Operation.payment({ destination, asset: Asset.native(), amount }))
    .setTimeout(options.timeoutSeconds ?? 60)
    .build();
  transaction.sign(source);
  return transaction;
}

/** The SDK's error for a failed submission carries Horizon's problem body in `response.data`. */
export function resultCodesOf(error: unknown): unknown {
  const response = (error as { response?: { data?: { extras?: { result_codes?: unknown } } } }).response;
  return response?.data?.extras?.result_codes;
}

export function statusOf(error: unknown): number | undefined {
  return (error as { response?: { status?: number } }).response?.status;
}
