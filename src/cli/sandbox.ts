import { Asset, Horizon, Keypair, Memo, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { type Command, InvalidArgumentError } from 'commander';
import { countDepositsTo } from '../deposits/data.ts';
import { ensureMemo } from '../deposits/watcher-data.ts';
import { getAccount } from '../ledger/service.ts';
import { faultKinds } from '../sandbox/faults.ts';
import { findRunningSandbox } from '../sandbox/ownership.ts';
import { startSandbox } from '../sandbox/server.ts';
import { sandboxDataDir } from '../stellar/connect.ts';
import { loadWallet } from '../stellar/wallet.ts';
import { CliError, cliLogger, loadCliConfig, type Output, print, withRuntime } from './context.ts';

/**
 * `settledesk sandbox` runs the sandbox network alone (the same network, from the same data folder,
 * that `npm start` runs in-process); `sandbox fault|close-ledger|status` drive a running one through
 * its control API, found through the address it publishes in the data folder, or `--url`.
 */

function integer(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError('expected a whole number');
  return value;
}

function ratio(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new InvalidArgumentError('expected a number from 0 to 1');
  }
  return value;
}

/** Accepts a Horizon listener's base URL or the control URL itself. */
export function controlUrlOf(url: string): string {
  return `${url.replace(/\/+$/, '').replace(/\/_sandbox$/, '')}/_sandbox`;
}

async function controlUrl(url: string | undefined): Promise<string> {
  if (url !== undefined) return controlUrlOf(url);
  const config = loadCliConfig();
  const running = await findRunningSandbox(sandboxDataDir(config));
  if (running === undefined) {
    throw new CliError(
      `no sandbox is running for ${config.dataDir}: start one (npm start, or settledesk sandbox) or pass --url`,
    );
  }
  return running.controlUrl;
}

async function call(url: string, init: RequestInit = {}): Promise<unknown> {
  const response = await fetch(url, init);
  const body: unknown = await response.json();
  if (!response.ok) throw new CliError(`the sandbox answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

type AddOptions = {
  url?: string;
  kind: string;
  route?: string;
  listener?: number;
  rate?: number;
  durationMs?: number;
  status?: number;
  latencyMs?: number;
  lagLedgers?: number;
  mode?: string;
};

type FaultView = {
  id: string;
  kind: string;
  route?: string;
  listener?: number;
  rate: number;
  expiresAt?: string;
};

function describeFault(fault: FaultView): string {
  const scope = [
    fault.route ? `route ${fault.route}` : '',
    fault.listener === undefined ? '' : `listener ${fault.listener}`,
  ]
    .filter((part) => part !== '')
    .join(', ');
  const until = fault.expiresAt ? ` until ${fault.expiresAt}` : '';
  return `${fault.id}  ${fault.kind}  ${scope || 'everywhere'}  rate ${fault.rate}${until}`;
}

function registerFaultCommands(sandbox: Command, output: () => Output): void {
  const fault = sandbox.command('fault').description('inject, list and clear faults in a running sandbox');
  fault
    .command('add')
    .description(`add a fault (kinds: ${faultKinds.join(', ')})`)
    .requiredOption('--kind <kind>', 'fault kind')
    .option('--url <url>', 'sandbox URL (default: the sandbox running for this data folder)')
    .option('--route <route>', 'route scope, e.g. horizon.submit or rpc')
    .option('--listener <index>', 'Horizon listener scope (0 is the first)', integer)
    .option('--rate <ratio>', 'share of matching requests, 0 to 1', ratio)
    .option('--duration-ms <ms>', 'how long the fault lasts', integer)
    .option('--status <code>', 'HTTP status for http_error: 500, 502, 503 or 429', integer)
    .option('--latency-ms <ms>', 'added latency for latency', integer)
    .option('--lag-ledgers <n>', 'ledgers behind for stale_ingestion', integer)
    .option('--mode <mode>', 'status_504 or drop_connection for accepted_timeout')
    .action(async (options: AddOptions) => {
      const { url, ...spec } = options;
      const body = (await call(`${await controlUrl(url)}/faults`, {
        method: 'POST',
        body: JSON.stringify(spec),
        headers: { 'content-type': 'application/json' },
      })) as { fault: FaultView };
      print(output(), body, () => `added ${describeFault(body.fault)}`);
    });
  fault
    .command('list')
    .description('list active faults')
    .option('--url <url>', 'sandbox URL (default: the sandbox running for this data folder)')
    .action(async (options: { url?: string }) => {
      const body = (await call(`${await controlUrl(options.url)}/faults`)) as { faults: FaultView[] };
      print(output(), body, () =>
        body.faults.length === 0 ? 'no faults' : body.faults.map(describeFault).join('\n'),
      );
    });
  fault
    .command('clear')
    .description('clear one fault by id, or all faults')
    .argument('[id]', 'fault id, e.g. f3')
    .option('--url <url>', 'sandbox URL (default: the sandbox running for this data folder)')
    .action(async (id: string | undefined, options: { url?: string }) => {
      const base = `${await controlUrl(options.url)}/faults`;
      const target = id === undefined ? base : `${base}/${encodeURIComponent(id)}`;
      const body = (await call(target, { method: 'DELETE' })) as { cleared: number };
      print(output(), body, () => `cleared ${body.cleared} fault(s)`);
    });
}

type RunOptions = { port?: number; host: string; ledgerCloseMs?: number; horizonListeners?: number };

export function registerSandboxCommands(program: Command, output: () => Output): void {
  const sandbox = program
    .command('sandbox')
    .description(
      'run the sandbox Stellar network (Horizon, Stellar RPC at /rpc, friendbot) until interrupted',
    )
    .option('--port <port>', 'port of the first Horizon listener (default SANDBOX_PORT, 8000)', integer)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--ledger-close-ms <ms>', 'time between ledgers (default SANDBOX_LEDGER_CLOSE_MS)', integer)
    .option(
      '--horizon-listeners <n>',
      'number of Horizon listeners (default SANDBOX_HORIZON_LISTENERS)',
      integer,
    )
    .action(async (options: RunOptions) => {
      const config = loadCliConfig();
      const running = await startSandbox({
        dataDir: sandboxDataDir(config),
        host: options.host,
        port: options.port ?? config.sandbox.port,
        ledgerCloseMs: options.ledgerCloseMs ?? config.sandbox.ledgerCloseMs,
        horizonListeners: options.horizonListeners ?? config.sandbox.horizonListeners,
        logger: cliLogger(config),
      });
      const address = {
        horizonUrls: running.horizonUrls,
        rpcUrl: running.rpcUrl,
        friendbotUrl: running.friendbotUrl,
        controlUrl: running.controlUrl,
        networkPassphrase: running.networkPassphrase,
      };
      print(output(), address, () =>
        [
          `sandbox network "${address.networkPassphrase}" is running`,
          `  horizon:   ${address.horizonUrls.join(' ')}`,
          `  rpc:       ${address.rpcUrl}`,
          `  friendbot: ${address.friendbotUrl}`,
          `  control:   ${address.controlUrl}`,
          `point settledesk at it with STELLAR_HORIZON_URLS=${address.horizonUrls.join(',')}`,
        ].join('\n'),
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await running.stop();
    });
  sandbox
    .command('status')
    .description('latest ledger, pending transactions, listeners and faults of a running sandbox')
    .option('--url <url>', 'sandbox URL (default: the sandbox running for this data folder)')
    .action(async (options: { url?: string }) => {
      const body = (await call(`${await controlUrl(options.url)}/status`)) as Record<string, unknown>;
      print(output(), body, () => JSON.stringify(body, null, 2));
    });
  sandbox
    .command('close-ledger')
    .description('close a ledger now (refused while a freeze_ledgers fault holds closing)')
    .option('--url <url>', 'sandbox URL (default: the sandbox running for this data folder)')
    .action(async (options: { url?: string }) => {
      const body = (await call(`${await controlUrl(options.url)}/ledgers/close`, { method: 'POST' })) as {
        sequence: number;
      };
      print(output(), body, () => `closed ledger ${body.sequence}`);
    });
  registerFaultCommands(sandbox, output);
  registerFundCommand(sandbox, output);
}

/** Friendbot's grant, less what a funding account keeps for its reserve and fees. */
export const sandboxFundMax = 9_000;
const fundWaitMs = 60_000;

/**
 * `settledesk sandbox fund --account ID --amount X`: a real sandbox payment into the hot wallet
 * with the account's deposit memo, from a fresh friendbot-funded account; the deposit watcher of
 * the running service credits it, and the command waits until it has.
 */
function registerFundCommand(sandbox: Command, output: () => Output): void {
  sandbox
    .command('fund')
    .description(
      "pay X XLM on the sandbox into the hot wallet with the account's memo, and wait for the watcher to credit it",
    )
    .requiredOption('--account <id>', 'the customer or merchant account to credit (XLM)')
    .requiredOption('--amount <xlm>', `lumens, up to ${sandboxFundMax}`)
    .action(async (options: { account: string; amount: string }) => {
      const amount = Number(options.amount);
      if (!/^\d+(\.\d{1,7})?$/.test(options.amount) || amount <= 0 || amount > sandboxFundMax) {
        throw new CliError(
          `--amount must be a positive number of lumens up to ${sandboxFundMax}, at most 7 decimals`,
        );
      }
      const config = loadCliConfig();
      const running = await findRunningSandbox(sandboxDataDir(config));
      if (running === undefined)
        throw new CliError(`no sandbox is running for ${config.dataDir}: start settledesk (npm start) first`);
      const result = await withRuntime({ migrate: false }, async (runtime) => {
        const account = await getAccount(runtime.sql, options.account);
        if (account.asset !== 'XLM')
          throw new CliError(`account ${account.id} holds ${account.asset}; sandbox fund pays XLM`);
        const memo = await ensureMemo(runtime.sql, account.id);
        const { hotWallet } = await loadWallet(runtime.config);
        const before = await countDepositsTo(runtime.sql, account.id);
        const hash = await payIntoHotWallet(running, hotWallet.publicKey(), options.amount, memo);
        const deadline = Date.now() + fundWaitMs;
        while ((await countDepositsTo(runtime.sql, account.id)) === before) {
          if (Date.now() > deadline)
            throw new CliError(
              `paid in transaction ${hash}, but nothing was credited within ${fundWaitMs} ms: is settledesk running?`,
            );
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        return {
          accountId: account.id,
          amount: options.amount,
          memo: memo.toString(),
          transactionHash: hash,
          credited: true,
        };
      });
      print(
        output(),
        result,
        () =>
          `credited ${result.amount} XLM to ${result.accountId} (memo ${result.memo}, transaction ${result.transactionHash})`,
      );
    });
}

async function payIntoHotWallet(
  running: { friendbotUrl: string; horizonUrls: string[]; networkPassphrase: string },
  hotWallet: string,
  amount: string,
  memo: bigint,
): Promise<string> {
  const payer = Keypair.random();
  const funded = await fetch(`${running.friendbotUrl}?addr=${payer.publicKey()}`);
  if (!funded.ok) throw new CliError(`friendbot answered ${funded.status}`);
  const horizon = new Horizon.Server(running.horizonUrls[0] ?? '', { allowHttp: true });
  const source = await horizon.loadAccount(payer.publicKey());
  const transaction = new TransactionBuilder(source, {
    fee: '1000',
    networkPassphrase: running.networkPassphrase,
    memo: Memo.id(memo.toString()),
  })
    .addOperation(Operation.payment({ destination: hotWallet, asset: Asset.native(), amount }))
    .setTimeout(60)
    .build();
  transaction.sign(payer);
  const response = await horizon.submitTransaction(transaction);
  return response.hash;
}
