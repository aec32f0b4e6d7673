import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Keypair } from '@stellar/stellar-sdk';
import type { Config } from '../platform/config.ts';

/**
 * The hot wallet (pays every payout) and the channel accounts (supply sequence numbers, so many
 * transactions can be in flight). Secrets come from configuration. On the sandbox, with none
 * configured, they are generated once into the data folder (mode 600) so `npm start` works alone;
 * on testnet and mainnet they must be configured. Secrets never reach a log line: only public keys
 * are ever passed to the logger.
 */

export type Wallet = { hotWallet: Keypair; channels: Keypair[] };

const walletFileName = 'stellar-wallet.json';

type WalletFile = { hotWallet: string; channels: string[] };

export class WalletConfigError extends Error {
  override name = 'WalletConfigError';
}

async function generatedWallet(dataDir: string, channelCount: number): Promise<Wallet> {
  const path = join(dataDir, walletFileName);
  let stored: WalletFile | undefined;
  try {
    stored = JSON.parse(await readFile(path, 'utf8')) as WalletFile;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const file: WalletFile = stored ?? { hotWallet: Keypair.random().secret(), channels: [] };
  const grown = file.channels.length < channelCount;
  while (file.channels.length < channelCount) file.channels.push(Keypair.random().secret());
  if (stored === undefined || grown) {
    await mkdir(dataDir, { recursive: true });
    await writeFile(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
    await chmod(path, 0o600);
  }
  return {
    hotWallet: Keypair.fromSecret(file.hotWallet),
    channels: file.channels.slice(0, channelCount).map((secret) => Keypair.fromSecret(secret)),
  };
}

export async function loadWallet(config: Config): Promise<Wallet> {
  const { hotWalletSecret, channelSecrets, channelCount } = config.payouts;
  if (hotWalletSecret !== undefined && channelSecrets !== undefined) {
    return {
      hotWallet: Keypair.fromSecret(hotWalletSecret),
      channels: channelSecrets.map((s) => Keypair.fromSecret(s)),
    };
  }
  if (config.stellar.network !== 'sandbox') {
    throw new WalletConfigError(
      `STELLAR_HOT_WALLET_SECRET and STELLAR_CHANNEL_SECRETS are required on ${config.stellar.network}`,
    );
  }
  if (hotWalletSecret !== undefined || channelSecrets !== undefined) {
    throw new WalletConfigError('set both STELLAR_HOT_WALLET_SECRET and STELLAR_CHANNEL_SECRETS, or neither');
  }
  return generatedWallet(config.dataDir, channelCount);
}
