import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Keypair } from '@stellar/stellar-sdk';
import { postJournal } from '../src/ledger/service.ts';
import { unscreenedDestination } from '../src/payouts/destinations.ts';
import { SettlementEngine } from '../src/payouts/engine.ts';
import { acceptPayout } from '../src/payouts/service.ts';
import type { Sql } from '../src/platform/db/types.ts';
import { createLogger } from '../src/platform/logging.ts';
import { type Poller, startPoller } from '../src/platform/poller.ts';
import { operationsPerTransactionMax } from '../src/sandbox/limits.ts';
import { startSandbox } from '../src/sandbox/server.ts';
import { ensureChannels } from '../src/stellar/channels.ts';
import type { StellarEndpoints } from '../src/stellar/endpoints.ts';
import { createSettlementChain, type StellarChain } from '../src/stellar/settlement-chain.ts';
import type { Wallet } from '../src/stellar/wallet.ts';
import { benchDatabase, knob } from './support.ts';

/** Limits of one run: bounded in payouts, channels, loops and seconds, so it always ends by itself. */
const payoutsCount = knob('BENCH_PAYOUTS', 10_000, 100, 100_000);
const ledgerCapacityOps = knob('BENCH_LEDGER_CAPACITY', 1_000, 100, 10_000);
/**
 * Five seconds, as on the public network and the sandbox's default. At one second the sandbox
 * itself is the limit: its admission verifies the hot wallet's signature once per operation in
 * JavaScript (≈2 ms each), so it cannot admit 1,000 payments a second (see docs/benchmarks.md).
 */
const ledgerCloseMs = knob('BENCH_LEDGER_CLOSE_MS', 5_000, 100, 10_000);
const batchSizeMax = operationsPerTransactionMax;
/** Twice the batches one ledger holds: one set waits in the queue while the other is applied. */
const channelsCount = knob(
  'BENCH_CHANNELS',
  Math.max(4, Math.ceil(ledgerCapacityOps / batchSizeMax) * 2),
  1,
  200,
);
/** Settlement loops on the one database, as several workers would run them. */
const loopsCount = knob('BENCH_LOOPS', 1, 1, 16);
const pollMs = 50;
/** `BENCH_ALIGN=0` starts the loops at a random point of the ledger clock instead. */
const alignStart = process.env.BENCH_ALIGN !== '0';
/** Destinations exist on chain before the run: each payout is a payment to an existing account. */
const destinationsCount = 50;
const acceptBatchMax = 500;
const payoutAmount = '0.01';
const customerFundingMinor = 1_000_000_000_000_000n;
/** Ten times the time a perfectly packed network needs, and never under a minute. */
const settleTimeoutMs = Math.max(60_000, 10 * Math.ceil(payoutsCount / ledgerCapacityOps) * ledgerCloseMs);
const statePollMs = 200;
const ledgerAlignPollMs = 20;

const silentLogger = createLogger('silent');

type Counts = { accepted: number; submitted: number; settled: number; failed: number; manual_review: number };

async function countStates(sql: Sql): Promise<Counts> {
  const rows = await sql<{ state: keyof Counts; count: number }[]>`
    select state, count(*)::int as count from payouts group by state`;
  const counts: Counts = { accepted: 0, submitted: 0, settled: 0, failed: 0, manual_review: 0 };
  for (const row of rows) counts[row.state] = row.count;
  return counts;
}

type SandboxAddress = Omit<StellarEndpoints, 'network'>;
/**
 * Successful payments from the hot wallet per ledger after `fromLedger`, the close time (in whole
 * seconds, as ledgers record it) of every ledger from `fromLedger` on, and the latest ledger.
 */
type LedgerPayments = {
  paymentsByLedger: [number, number][];
  closeTimes: [number, number][];
  latestLedger: number;
};
type ToSandbox = { kind: 'measure'; hotWallet: string; fromLedger: number } | { kind: 'stop' };
type FromSandbox = ({ kind: 'ready' } & SandboxAddress) | ({ kind: 'measured' } & LedgerPayments);
const sandboxRole = 'bench-payouts-sandbox';

/**
 * The sandbox network in a worker thread of its own, as the network is a separate system in
 * production: its admission checks (an ed25519 verification per operation) and ledger closes
 * would otherwise share the settlement loop's event loop and slow both.
 */
async function serveSandboxInWorker(): Promise<void> {
  const options = workerData as { dataDir: string; ledgerCloseMs: number; ledgerCapacityOps: number };
  const sandbox = await startSandbox(options);
  const port = parentPort;
  if (port === null) throw new Error('the sandbox worker has no parent port');
  const reply = (message: FromSandbox) => port.postMessage(message);
  port.on('message', async (message: ToSandbox) => {
    if (message.kind === 'stop') {
      await sandbox.stop();
      port.close();
      return;
    }
    const counts = new Map<number, number>();
    for (const payment of sandbox.network.accountPayments(message.hotWallet)) {
      if (payment.ledger <= message.fromLedger || !payment.transactionSuccessful) continue;
      if (payment.body.type !== 'payment' || payment.body.from !== message.hotWallet) continue;
      counts.set(payment.ledger, (counts.get(payment.ledger) ?? 0) + 1);
    }
    reply({
      kind: 'measured',
      paymentsByLedger: [...counts],
      closeTimes: sandbox.network
        .ledgerList()
        .filter((ledger) => ledger.sequence >= message.fromLedger)
        .map((ledger) => [ledger.sequence, ledger.closeTime]),
      latestLedger: sandbox.network.latestLedger().sequence,
    });
  });
  reply({
    kind: 'ready',
    horizonUrls: sandbox.horizonUrls,
    rpcUrl: sandbox.rpcUrl,
    controlUrl: sandbox.controlUrl,
    friendbotUrl: sandbox.friendbotUrl,
    networkPassphrase: sandbox.networkPassphrase,
  });
}

type SandboxWorker = {
  endpoints: StellarEndpoints;
  measure(hotWallet: string, fromLedger: number): Promise<LedgerPayments>;
  stop(): Promise<void>;
};

async function startSandboxWorker(dataDir: string): Promise<SandboxWorker> {
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { role: sandboxRole, dataDir, ledgerCloseMs, ledgerCapacityOps },
  });
  const next = () =>
    new Promise<FromSandbox>((resolve, reject) => {
      const exited = (code: number) => reject(new Error(`the sandbox worker exited with code ${code}`));
      worker.once('error', reject);
      worker.once('exit', exited);
      worker.once('message', (message: FromSandbox) => {
        worker.off('error', reject);
        worker.off('exit', exited);
        resolve(message);
      });
    });
  const ready = await next();
  if (ready.kind !== 'ready') throw new Error(`the sandbox worker sent ${ready.kind} before ready`);
  const { kind: _, ...address } = ready;
  return {
    endpoints: { network: 'sandbox', ...address },
    measure: async (hotWallet, fromLedger) => {
      const answer = next();
      worker.postMessage({ kind: 'measure', hotWallet, fromLedger } satisfies ToSandbox);
      const measured = await answer;
      if (measured.kind !== 'measured') throw new Error(`the sandbox worker sent ${measured.kind}`);
      return measured;
    },
    stop: async () => {
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.postMessage({ kind: 'stop' } satisfies ToSandbox);
      await exited;
    },
  };
}

async function friendbot(endpoints: StellarEndpoints, accountId: string): Promise<void> {
  const response = await fetch(`${endpoints.friendbotUrl}?addr=${accountId}`);
  if (!response.ok) throw new Error(`friendbot answered ${response.status} for ${accountId}`);
}

/** A customer account funded from the XLM `fees` system account, as a deposit would fund it. */
async function fundedCustomer(sql: Sql): Promise<string> {
  const [customer] = await sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  const [fees] = await sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = 'XLM'`;
  const accountId = customer?.id ?? '';
  await sql.begin((tx) =>
    postJournal(tx, {
      kind: 'bench_funding',
      entries: [
        { accountId: fees?.id ?? '', amountMinor: -customerFundingMinor },
        { accountId, amountMinor: customerFundingMinor },
      ],
    }),
  );
  return accountId;
}

/** Every payout accepted before any loop starts, so a full backlog exists from the first round. */
async function acceptPayouts(sql: Sql, destinations: readonly string[]): Promise<void> {
  // One stream: each acceptance also upserts the one `payouts_settle` job row, so concurrent
  // transactions queue on its lock (measured: four streams took twice as long as one).
  const sourceAccountId = await fundedCustomer(sql);
  const actor = { name: 'bench', requestId: undefined };
  for (let start = 0; start < payoutsCount; start += acceptBatchMax) {
    const end = Math.min(payoutsCount, start + acceptBatchMax);
    await sql.begin(async (tx) => {
      for (let index = start; index < end; index += 1) {
        const destination = destinations[index % destinations.length] ?? '';
        await acceptPayout(
          tx,
          { sourceAccountId, destination, asset: 'XLM', amount: payoutAmount },
          actor,
          unscreenedDestination,
        );
      }
    });
  }
}

type Utilisation = {
  firstLedger: number;
  lastLedger: number;
  ledgers: number;
  operations: number;
  perLedger: number[];
  paymentLedgers: number;
  /** Seconds between the close of the ledger before the window and the window's last one, per ledger. */
  intervalSeconds: number;
};

/**
 * The backlog window: from the first ledger holding a payout payment to the last ledger that
 * opened with at least a full ledger of payouts not yet paid on chain (it could have been filled
 * entirely). The ledgers after it hold the tail, which cannot fill a ledger.
 */
function utilisation(measured: LedgerPayments, fromLedger: number): Utilisation {
  const paymentsByLedger = new Map(measured.paymentsByLedger);
  const closeTimes = new Map(measured.closeTimes);
  const sequences = [...paymentsByLedger.keys()];
  const firstLedger = sequences.length > 0 ? Math.min(...sequences) : fromLedger + 1;
  const latest = measured.latestLedger;
  let remaining = payoutsCount;
  let lastLedger = firstLedger;
  const perLedger: number[] = [];
  for (let sequence = firstLedger; remaining >= ledgerCapacityOps && sequence <= latest; sequence += 1) {
    const operations = paymentsByLedger.get(sequence) ?? 0;
    perLedger.push(operations);
    lastLedger = sequence;
    remaining -= operations;
  }
  return {
    firstLedger,
    lastLedger,
    ledgers: perLedger.length,
    operations: perLedger.reduce((sum, operations) => sum + operations, 0),
    perLedger,
    paymentLedgers: sequences.length,
    intervalSeconds:
      ((closeTimes.get(lastLedger) ?? 0) - (closeTimes.get(firstLedger - 1) ?? 0)) /
      Math.max(1, perLedger.length),
  };
}

/**
 * Waits for a ledger to close, so that the loops start at the same point of the ledger clock in
 * every run rather than at a random one (a start mid-interval splits the first round across two
 * ledgers); returns that ledger's sequence.
 */
async function nextLedger(chain: StellarChain): Promise<number> {
  const { sequence } = await chain.latestLedger();
  const deadline = performance.now() + 2 * ledgerCloseMs + 10_000;
  for (;;) {
    const latest = await chain.latestLedger();
    if (latest.sequence > sequence || performance.now() > deadline) return latest.sequence;
    await new Promise((resolve) => setTimeout(resolve, ledgerAlignPollMs));
  }
}

async function waitUntilDone(sql: Sql): Promise<Counts> {
  const deadline = performance.now() + settleTimeoutMs;
  for (;;) {
    const counts = await countStates(sql);
    if (counts.settled + counts.failed === payoutsCount) return counts;
    if (performance.now() > deadline) {
      process.stdout.write(`NOT SETTLED within ${settleTimeoutMs / 1000} s: ${JSON.stringify(counts)}\n`);
      return counts;
    }
    await new Promise((resolve) => setTimeout(resolve, statePollMs));
  }
}

type Setup = { wallet: Wallet; engine: SettlementEngine; chain: StellarChain };

/** The hot wallet, channels and destinations on chain; the engine on the bench database. */
async function setUp(sql: Sql, endpoints: StellarEndpoints): Promise<Setup & { destinations: string[] }> {
  const wallet: Wallet = {
    hotWallet: Keypair.random(),
    channels: Array.from({ length: channelsCount }, () => Keypair.random()),
  };
  await ensureChannels(endpoints, wallet, ['XLM']);
  const destinations = Array.from({ length: destinationsCount }, () => Keypair.random().publicKey());
  await Promise.all(destinations.map((destination) => friendbot(endpoints, destination)));
  const chain = createSettlementChain(endpoints, silentLogger);
  const engine = new SettlementEngine(sql, chain, {
    hotWallet: wallet.hotWallet,
    channels: wallet.channels,
    networkPassphrase: endpoints.networkPassphrase,
    batchSizeMax,
    windowSeconds: 60,
    windowLedgers: 20,
    feeCapStroops: 10_000n,
    resubmitAfterMs: 10_000,
    manualReviewAfterMs: 60_000,
    logger: silentLogger,
  });
  await engine.registerChannels();
  return { wallet, engine, chain, destinations };
}

/** Runs the loops from the start ledger until every payout is settled or failed (or the timeout). */
async function settle(
  sql: Sql,
  setup: Setup,
): Promise<{ counts: Counts; seconds: number; startLedger: number }> {
  const startLedger = alignStart
    ? await nextLedger(setup.chain)
    : (await setup.chain.latestLedger()).sequence;
  const started = performance.now();
  const loops: Poller[] = Array.from({ length: loopsCount }, (_, index) =>
    startPoller({
      name: `settlement loop ${index}`,
      worker: 'payout',
      round: async () => {
        const report = await setup.engine.runRound();
        return report.built > 0 || report.resolved > 0;
      },
      pollMs,
      logger: silentLogger,
    }),
  );
  const counts = await waitUntilDone(sql);
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(loops.map((loop) => loop.stop()));
  return { counts, seconds, startLedger };
}

export async function benchPayouts(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'settledesk-bench-sandbox-'));
  const sandbox = await startSandboxWorker(dataDir);
  const db = await benchDatabase();
  try {
    const setup = await setUp(db.sql, sandbox.endpoints);
    const acceptStarted = performance.now();
    await acceptPayouts(db.sql, setup.destinations);
    const acceptSeconds = (performance.now() - acceptStarted) / 1000;
    process.stdout.write(
      `${payoutsCount} payouts of ${payoutAmount} XLM to ${destinationsCount} existing accounts, accepted in ${acceptSeconds.toFixed(1)} s before the loops start\n` +
        `ledger capacity ${ledgerCapacityOps} operations, a ledger every ${ledgerCloseMs} ms; ${channelsCount} channels, batches of ${batchSizeMax}, ${loopsCount} loop(s) polling every ${pollMs} ms, started ${alignStart ? 'just after a ledger closed' : 'at once'}\n`,
    );
    const { counts, seconds, startLedger } = await settle(db.sql, setup);
    const hotWallet = setup.wallet.hotWallet.publicKey();
    const used = utilisation(await sandbox.measure(hotWallet, startLedger), startLedger);
    const ratio = used.operations / Math.max(1, used.ledgers * ledgerCapacityOps);
    const packedSeconds = (payoutsCount / ledgerCapacityOps) * (ledgerCloseMs / 1000);
    process.stdout.write(
      [
        `settled ${counts.settled}, failed ${counts.failed}, unfinished ${payoutsCount - counts.settled - counts.failed}`,
        `end to end ${seconds.toFixed(1)} s, ${(payoutsCount / seconds).toFixed(0)} payouts/s (full ledgers every ${ledgerCloseMs} ms would take ${packedSeconds.toFixed(1)} s); ${used.paymentLedgers} ledgers held payouts`,
        `backlog window: ledgers ${used.firstLedger}–${used.lastLedger}, the ${used.ledgers} that opened with ≥ ${ledgerCapacityOps} payouts unpaid, holding ${used.operations} payments`,
        `payments per ledger in the window: ${used.perLedger.join(' ')}; a ledger closed every ${used.intervalSeconds.toFixed(1)} s on average`,
        `ledger capacity used while a backlog existed: ${ratio.toFixed(2)} (target ≥ 0.90)`,
        '',
      ].join('\n'),
    );
  } finally {
    await db.close();
    await sandbox.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === sandboxRole)
  await serveSandboxInWorker();
