import {
  Asset,
  Horizon,
  type Keypair,
  NotFoundError,
  Operation,
  TransactionBuilder,
} from '@stellar/stellar-sdk';
import { OperatingError } from '../platform/errors.ts';
import type { StellarEndpoints } from './endpoints.ts';
import type { Wallet } from './wallet.ts';

/**
 * `settledesk channels ensure|verify|view`: the hot wallet and channel accounts exist on chain,
 * funded, with a trustline for every credit asset the ledger holds. `ensure` is safe to re-run:
 * it only creates what is missing.
 */

/** What a channel needs: its reserve plus fees for a long run of transactions. */
export const channelStartingBalance = '20';
const setupTimeoutSeconds = 60;

export type AccountReport = {
  role: 'hot_wallet' | 'channel';
  accountId: string;
  exists: boolean;
  nativeBalance: string | null;
  sequence: string | null;
  missingTrustlines: string[];
};

function horizonFor(endpoints: StellarEndpoints, index = 0): Horizon.Server {
  return new Horizon.Server(endpoints.horizonUrls[index] ?? '', {
    allowHttp: endpoints.network === 'sandbox',
  });
}

/** Runs a read on the first Horizon that answers. */
async function onAnyHorizon<T>(
  endpoints: StellarEndpoints,
  read: (server: Horizon.Server) => Promise<T>,
): Promise<T> {
  let lastError: unknown;
  for (let index = 0; index < endpoints.horizonUrls.length; index += 1) {
    try {
      return await read(horizonFor(endpoints, index));
    } catch (error) {
      if (error instanceof NotFoundError) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

async function loadOrUndefined(endpoints: StellarEndpoints, accountId: string) {
  try {
    return await onAnyHorizon(endpoints, (server) => server.loadAccount(accountId));
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

function creditAssets(assetCodes: readonly string[], hotWalletId: string): Asset[] {
  return assetCodes
    .filter((code) => code !== 'XLM')
    .map((code) => {
      const [assetCode = '', issuer = ''] = code.split(':');
      return new Asset(assetCode, issuer);
    })
    .filter((asset) => asset.getIssuer() !== hotWalletId);
}

async function report(
  endpoints: StellarEndpoints,
  role: AccountReport['role'],
  keypair: Keypair,
  assets: readonly Asset[],
): Promise<AccountReport> {
  const account = await loadOrUndefined(endpoints, keypair.publicKey());
  const lines = account?.balances ?? [];
  const hasLine = (asset: Asset) =>
    lines.some(
      (line) =>
        'asset_code' in line &&
        'asset_issuer' in line &&
        line.asset_code === asset.getCode() &&
        line.asset_issuer === asset.getIssuer(),
    );
  return {
    role,
    accountId: keypair.publicKey(),
    exists: account !== undefined,
    nativeBalance: lines.find((line) => line.asset_type === 'native')?.balance ?? null,
    sequence: account?.sequence ?? null,
    missingTrustlines:
      role === 'hot_wallet' && account
        ? assets.filter((asset) => !hasLine(asset)).map((a) => `${a.getCode()}:${a.getIssuer()}`)
        : [],
  };
}

export async function viewChannels(
  endpoints: StellarEndpoints,
  wallet: Wallet,
  assetCodes: readonly string[],
) {
  const assets = creditAssets(assetCodes, wallet.hotWallet.publicKey());
  return Promise.all([
    report(endpoints, 'hot_wallet', wallet.hotWallet, assets),
    ...wallet.channels.map((channel) => report(endpoints, 'channel', channel, assets)),
  ]);
}

export function problemsOf(reports: readonly AccountReport[]): string[] {
  return reports.flatMap((entry) => [
    ...(entry.exists ? [] : [`${entry.role} ${entry.accountId} does not exist on chain`]),
    ...entry.missingTrustlines.map((line) => `${entry.role} ${entry.accountId} has no trustline for ${line}`),
  ]);
}

async function friendbot(endpoints: StellarEndpoints, accountId: string): Promise<void> {
  if (endpoints.friendbotUrl === undefined)
    throw new OperatingError(
      `${accountId} does not exist and ${endpoints.network} has no friendbot: fund it`,
    );
  const response = await fetch(`${endpoints.friendbotUrl}?addr=${encodeURIComponent(accountId)}`);
  if (!response.ok) throw new OperatingError(`friendbot answered ${response.status} for ${accountId}`);
}

async function submitFromHotWallet(
  endpoints: StellarEndpoints,
  hotWallet: Keypair,
  operations: ReturnType<typeof Operation.changeTrust>[],
) {
  const source = await onAnyHorizon(endpoints, (server) => server.loadAccount(hotWallet.publicKey()));
  const builder = new TransactionBuilder(source, {
    fee: '1000',
    networkPassphrase: endpoints.networkPassphrase,
  });
  for (const operation of operations) builder.addOperation(operation);
  const transaction = builder.setTimeout(setupTimeoutSeconds).build();
  transaction.sign(hotWallet);
  await horizonFor(endpoints).submitTransaction(transaction);
}

/** Creates what is missing; returns the reports after the changes. */
export async function ensureChannels(
  endpoints: StellarEndpoints,
  wallet: Wallet,
  assetCodes: readonly string[],
) {
  const before = await viewChannels(endpoints, wallet, assetCodes);
  const [hot, ...channels] = before;
  if (hot && !hot.exists) await friendbot(endpoints, hot.accountId);
  const missing = channels.filter((channel) => !channel.exists);
  if (missing.length > 0) {
    if (endpoints.friendbotUrl !== undefined) {
      await Promise.all(missing.map((channel) => friendbot(endpoints, channel.accountId)));
    } else {
      await submitFromHotWallet(
        endpoints,
        wallet.hotWallet,
        missing.map((channel) =>
          Operation.createAccount({
            destination: channel.accountId,
            startingBalance: channelStartingBalance,
          }),
        ),
      );
    }
  }
  const assets = creditAssets(assetCodes, wallet.hotWallet.publicKey());
  const refreshed = await report(endpoints, 'hot_wallet', wallet.hotWallet, assets);
  const lines = assets.filter((asset) =>
    refreshed.missingTrustlines.includes(`${asset.getCode()}:${asset.getIssuer()}`),
  );
  if (lines.length > 0) {
    await submitFromHotWallet(
      endpoints,
      wallet.hotWallet,
      lines.map((asset) => Operation.changeTrust({ asset })),
    );
  }
  return viewChannels(endpoints, wallet, assetCodes);
}
