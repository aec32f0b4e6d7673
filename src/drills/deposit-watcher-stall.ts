import { join } from 'node:path';
import {
  Account,
  Asset,
  Horizon,
  Keypair,
  Memo,
  Operation,
  rpc,
  TransactionBuilder,
} from '@stellar/stellar-sdk';
import type { Sql } from '../platform/db/types.ts';
import type { CellResult } from '../runbooks/cells.ts';
import { findRunningSandbox, type SandboxAddress } from '../sandbox/ownership.ts';
import type { Drill, DrillContext, ServiceProcess } from './harness.ts';
import { startSandboxService } from './sandbox-service.ts';
import {
  alertThreshold,
  api,
  checkLedgerBalanced,
  cliOk,
  metricValue,
  openAccount,
  scrapeMetrics,
  triageSummary,
  xlmMinor,
} from './support.ts';

const gauge = 'deposit_watcher_last_ledger_age_seconds';
/**
 * The alert fires when the gauge is above 300 s for 5 minutes; a stalled watcher's gauge grows one
 * second per second, so the real threshold would hold a drill for ten minutes. The drill asks for
 * the same comparison with 15 s, held over two samples a second and a half apart. Before the
 * fault the gauge stays within a ledger and a poll (1.25 s here) of zero.
 */
const stalledAgeSecondsDrill = 15;
const heldForMs = 1_500;
const healthyAgeSecondsMax = 5;
const ledgerCloseMs = 1_000;
const watcherPollMs = 250;
const fundedBeforeStall = '10';
const detectionMsMax = 45_000;
const recoveryMsMax = 30_000;
const submissionPollAttempts = 60;
const submissionPollMs = 250;
const friendbotTimeoutMs = 30_000;

type Customer = { id: string; hotWallet: string; memo: string; muxedAddress: string };
type StallPayment = { to: 'alice' | 'bob'; amount: string; muxed: boolean };

/**
 * Payments made on chain while the watcher cannot see them: to Alice with her memo id, to Bob at
 * his muxed address (no memo), amounts all different so each credit is traceable to its payment.
 */
const stallPayments: readonly StallPayment[] = [
  { to: 'alice', amount: '1.5', muxed: false },
  { to: 'alice', amount: '2.25', muxed: false },
  { to: 'alice', amount: '4', muxed: false },
  { to: 'bob', amount: '5', muxed: true },
  { to: 'bob', amount: '0.5', muxed: true },
];

/**
 * docs/runbooks/deposit-watcher-stalled.md against `settledesk serve` and its sandbox network:
 * the watcher credits a sandbox payment, then every Horizon's ingestion stops (the runbook's
 * practice cell) while five more payments land on chain through Stellar RPC. Detection: the
 * watcher's age gauge on /metrics passes the (shortened) alert threshold and triage reports it;
 * the runbook's cells find a stale Horizon with polls going on, the fault is cleared as fixing
 * Horizon does, and then every payment of the stall is credited exactly once, per account in
 * count and sum, and the ledger is balanced. The fault is `stale_ingestion` of 64 ledgers (the
 * sandbox's most) on every listener: the chain is younger than that here (one-second ledgers, the
 * fault comes about 15 s in), so each Horizon stays at the oldest ledger, as a stopped ingestion
 * does, and the payments of the stall stay out of its sight until the fault is cleared.
 */
export const depositWatcherStallDrill: Drill = {
  name: 'deposit-watcher-stall',
  runbook: 'deposit-watcher-stalled.md',
  description:
    "every Horizon stops ingesting while customers keep paying on chain; the watcher's lag alert " +
    'and triage see it, the runbook finds the stale Horizon, and once it is fixed every payment of ' +
    'the stall is credited exactly once',
  run: async (context) => {
    const drill = await startSandboxService(
      context,
      {
        SANDBOX_LEDGER_CLOSE_MS: String(ledgerCloseMs),
        DEPOSIT_WATCHER_POLL_MS: String(watcherPollMs),
      },
      { operator: 'drill-operator' },
    );
    const { service, sql, tokens } = drill;
    const network = await context.step('find the sandbox network', async () => {
      const sandboxDir = join(drill.env.SETTLEDESK_DATA_DIR ?? '', 'sandbox');
      const address = await findRunningSandbox(sandboxDir);
      if (address === undefined) throw context.fail(`no sandbox published in ${sandboxDir}`);
      return { address };
    });
    const customers = await context.step(
      'open two customer accounts with their deposit intents',
      async () => ({
        alice: await openCustomer(context, service, tokens.service, 'drill-alice'),
        bob: await openCustomer(context, service, tokens.service, 'drill-bob'),
      }),
    );
    await context.step(
      `the watcher credits a sandbox payment (sandbox fund ${fundedBeforeStall} XLM)`,
      async () => {
        await cliOk(context, context.env, [
          'sandbox',
          'fund',
          '--account',
          customers.alice.id,
          '--amount',
          fundedBeforeStall,
        ]);
        const age = metricValue(await scrapeMetrics(service), gauge);
        if (age > healthyAgeSecondsMax)
          throw context.fail(
            `${gauge} is ${age} s with nothing wrong; expected at most ${healthyAgeSecondsMax} s`,
          );
        context.note(`${gauge} ${age.toFixed(2)} s while healthy`);
      },
    );
    const payers = await context.step(
      `fund ${stallPayments.length} customer wallets on chain (friendbot)`,
      () => fundPayers(network.address, stallPayments.length),
    );

    const faultAt = await context.step(
      'fault: every Horizon stops ingesting (runbook practice cell)',
      async () => {
        await context.cells(['practice-stale-horizon'], { yes: true });
        const at = performance.now();
        await context.expectAfter('practice-stale-horizon', 'a Horizon still ingests', () =>
          everyHorizonBehind(network.address),
        );
        return at;
      },
    );
    const paid = await context.step(
      `customers keep paying: ${stallPayments.length} payments land on chain through Stellar RPC`,
      () => payDuringStall(context, network.address, payers, customers),
    );
    const alertThresholdS = alertThreshold('DepositWatcherStalled', gauge);
    const detected = await context.step(
      `detection: ${gauge} passes ${stalledAgeSecondsDrill} s (the alert's ${alertThresholdS} s, shortened) and keeps growing`,
      () => detectStall(context, service, faultAt),
    );
    await context.step(
      'detection: triage reports the watcher lagging; nothing of the stall is credited',
      async () => {
        const summary = await triageSummary(context, context.env);
        const age = summary.deposits.watcher.lastLedgerAgeSeconds;
        if (age === null || age <= stalledAgeSecondsDrill)
          throw context.fail(`triage summary's watcher lastLedgerAgeSeconds is ${age}`);
        context.note(
          `triage summary: watcher at ledger ${summary.deposits.watcher.lastLedger}, ${age} s old`,
        );
        const credited = await chainCredits(sql, customers);
        if (credited.alice.count !== 1 || credited.bob.count !== 0)
          throw context.fail(`the watcher credited during the stall: ${JSON.stringify(credited)}`);
      },
    );
    await context.step('runbook: find the case (polls go on, every Horizon is stale)', () =>
      investigate(context, network.address, paid),
    );
    const clearedAt = await context.step(
      'mitigation: fix Horizon (runbook practice cell clears the fault)',
      async () => {
        // Still stalled right before the fix, so the recovery after it is the fix's doing.
        const credited = await chainCredits(sql, customers);
        if (credited.alice.count + credited.bob.count !== 1)
          throw context.fail(
            `the stall ended before the fix: ${credited.alice.count + credited.bob.count} credits`,
          );
        await context.cells(['practice-clear-faults'], { yes: true });
        return performance.now();
      },
    );
    await context.step('recovery: the watcher credits every payment of the stall', () =>
      context.expectAfter('practice-clear-faults', 'the stall payments were not credited after the fix', () =>
        context.waitFor(
          'every payment of the stall to be credited',
          async () => {
            const credited = await chainCredits(sql, customers);
            return credited.alice.count + credited.bob.count >= 1 + stallPayments.length
              ? credited
              : undefined;
          },
          recoveryMsMax,
        ),
      ),
    );
    const recoveredMs = Math.round(performance.now() - clearedAt);
    await context.step('runbook: the lag is back to seconds (watcher-state again)', async () => {
      const [result] = await context.cells(['watcher-state']);
      await context.expectAfter('practice-clear-faults', 'the watcher still lags after the fix', async () => {
        const state = watcherState(result);
        if (state.lagSeconds > healthyAgeSecondsMax)
          throw new Error(`watcher-state shows a lag of ${state.lagSeconds} s`);
        const age = metricValue(await scrapeMetrics(service), gauge);
        if (age > healthyAgeSecondsMax) throw new Error(`${gauge} is still ${age} s`);
      });
    });
    const money = await context.step(
      'money: each payment credited exactly once, per account in count and sum',
      () =>
        context.expectAfter('practice-clear-faults', 'the stall payments are not credited exactly once', () =>
          checkMoney(context, sql, customers),
        ),
    );
    await context.step('the ledger sums to zero (settledesk ledger check, triage ledger)', () =>
      checkLedgerBalanced(context, { triage: true }),
    );
    context.figure('stallPayments', paid.length, `${paid.length} payments made on chain during the stall`);
    context.figure(
      'creditedAfterRecovery',
      money.stallCredits,
      `${money.stallCredits} of them credited after the fix, at most ${money.creditsPerPaymentMax} credit each`,
    );
    context.figure('creditsPerPaymentMax', money.creditsPerPaymentMax, 'no payment credited twice');
    context.figure(
      'detectionMs',
      detected.afterMs,
      `${gauge} passed ${stalledAgeSecondsDrill} s ${detected.afterMs} ms after the fault (${detected.ageSeconds.toFixed(1)} s)`,
    );
    context.figure('recoveryMs', recoveredMs, `every stall payment credited ${recoveredMs} ms after the fix`);
  },
};

async function openCustomer(
  context: DrillContext,
  service: ServiceProcess,
  token: string,
  ownerRef: string,
): Promise<Customer> {
  const id = await openAccount(context, service, token, ownerRef);
  const intent = await api(service, token, 'POST', '/v1/deposits/intents', { accountId: id });
  const stellar = intent.body.stellar as
    | { address: string; memo: { value: string }; muxedAddress: string }
    | undefined;
  if (intent.status !== 201 || stellar === undefined)
    throw context.fail(`POST /v1/deposits/intents answered ${intent.status} ${JSON.stringify(intent.body)}`);
  return { id, hotWallet: stellar.address, memo: stellar.memo.value, muxedAddress: stellar.muxedAddress };
}

type Payer = { keypair: Keypair; account: Account };

/** Wallets funded and loaded while Horizon is healthy; during the stall they only send. */
async function fundPayers(address: SandboxAddress, count: number): Promise<Payer[]> {
  const horizon = new Horizon.Server(address.horizonUrls[0] ?? '', { allowHttp: true });
  return Promise.all(
    Array.from({ length: count }, async () => {
      const keypair = Keypair.random();
      const funded = await fetch(`${address.friendbotUrl}?addr=${keypair.publicKey()}`, {
        signal: AbortSignal.timeout(friendbotTimeoutMs),
      });
      if (!funded.ok) throw new Error(`friendbot answered ${funded.status}`);
      const loaded = await horizon.loadAccount(keypair.publicKey());
      return { keypair, account: new Account(keypair.publicKey(), loaded.sequenceNumber()) };
    }),
  );
}

/** Each Horizon's ingested ledger behind its core's: what a stopped ingestion looks like. */
async function everyHorizonBehind(address: SandboxAddress): Promise<void> {
  for (const url of address.horizonUrls) {
    const response = await fetch(`${url}/`, { signal: AbortSignal.timeout(5_000) });
    const root = (await response.json()) as { history_latest_ledger: number; core_latest_ledger: number };
    if (!(root.history_latest_ledger < root.core_latest_ledger))
      throw new Error(
        `${url} has ingested ledger ${root.history_latest_ledger} of ${root.core_latest_ledger}`,
      );
  }
}

type Paid = StallPayment & { hash: string; ledger: number };

async function payDuringStall(
  context: DrillContext,
  address: SandboxAddress,
  payers: readonly Payer[],
  customers: { alice: Customer; bob: Customer },
): Promise<Paid[]> {
  const server = new rpc.Server(address.rpcUrl, { allowHttp: true });
  return Promise.all(
    stallPayments.map(async (payment, index) => {
      const payer = payers[index];
      if (payer === undefined) throw new Error('fewer wallets than payments');
      const customer = customers[payment.to];
      const transaction = new TransactionBuilder(payer.account, {
        fee: '1000',
        networkPassphrase: address.networkPassphrase,
        ...(payment.muxed ? {} : { memo: Memo.id(customer.memo) }),
      })
        .addOperation(
          Operation.payment({
            destination: payment.muxed ? customer.muxedAddress : customer.hotWallet,
            asset: Asset.native(),
            amount: payment.amount,
          }),
        )
        .setTimeout(60)
        .build();
      transaction.sign(payer.keypair);
      const sent = await server.sendTransaction(transaction);
      if (sent.status !== 'PENDING') throw context.fail(`RPC sendTransaction answered ${sent.status}`);
      const landed = await server.pollTransaction(sent.hash, {
        attempts: submissionPollAttempts,
        sleepStrategy: () => submissionPollMs,
      });
      if (landed.status !== rpc.Api.GetTransactionStatus.SUCCESS)
        throw context.fail(`payment ${sent.hash} ended ${landed.status}`);
      return { ...payment, hash: sent.hash, ledger: landed.ledger };
    }),
  );
}

/** The alert's comparison with the drill's threshold, holding over two samples, on GET /metrics. */
async function detectStall(
  context: DrillContext,
  service: ServiceProcess,
  faultAt: number,
): Promise<{ afterMs: number; ageSeconds: number }> {
  const first = await context.waitFor(
    `${gauge} to pass ${stalledAgeSecondsDrill} s`,
    async () => {
      const age = metricValue(await scrapeMetrics(service), gauge);
      return age > stalledAgeSecondsDrill ? age : undefined;
    },
    detectionMsMax,
  );
  const afterMs = Math.round(performance.now() - faultAt);
  await new Promise((resolve) => setTimeout(resolve, heldForMs));
  const second = metricValue(await scrapeMetrics(service), gauge);
  if (!(second > first)) throw context.fail(`${gauge} went from ${first} s to ${second} s: it does not grow`);
  context.note(`${gauge} ${first.toFixed(1)} s, then ${second.toFixed(1)} s ${heldForMs} ms later`);
  return { afterMs, ageSeconds: second };
}

/**
 * The runbook's L1 step 1 and its cases: polls still complete (the time since the last poll is
 * small) while the lag grows, and every Horizon reports an ingested ledger behind the chain, so
 * the payments after the cursor are not visible there: the "stale Horizon" case.
 */
async function investigate(
  context: DrillContext,
  address: SandboxAddress,
  paid: readonly Paid[],
): Promise<void> {
  const names = [
    'watcher-state',
    'horizon-heads',
    'workers-alive',
    'payments-after-cursor',
    'search-logs-watcher',
  ];
  const results = new Map((await context.cells(names)).map((result) => [result.name, result]));
  const lastPaidLedger = Math.max(...paid.map((payment) => payment.ledger));
  await context.expectAfter('watcher-state', 'it does not show a lag with polls going on', async () => {
    const state = watcherState(results.get('watcher-state'));
    if (state.lagSeconds <= stalledAgeSecondsDrill) throw new Error(`lag_seconds is ${state.lagSeconds}`);
    if (state.sinceLastPollSeconds > healthyAgeSecondsMax)
      throw new Error(`seconds_since_last_poll is ${state.sinceLastPollSeconds}: polls should go on`);
  });
  await context.expectAfter('horizon-heads', 'it does not show every Horizon behind the chain', async () => {
    const text = results.get('horizon-heads')?.stdout ?? '';
    for (const url of address.horizonUrls) {
      const match = new RegExp(`^${url}\\s+ledger (\\d+) .*core (\\d+)$`, 'm').exec(text);
      if (!match) throw new Error(`no line for ${url}`);
      if (Number(match[1]) >= lastPaidLedger)
        throw new Error(
          `${url} reports ledger ${match[1]}, not behind the payments in ledger ${lastPaidLedger}`,
        );
    }
    // `settledesk triage stellar`: path, reachable, latest ledger, age, ingestion lag, ...
    const paths = [...text.matchAll(/^(horizon-\d+)\s+yes\s+\d+\s+\d+\s+(\d+)\s/gm)];
    if (paths.length !== address.horizonUrls.length || paths.some((path) => Number(path[2]) === 0))
      throw new Error('settledesk triage stellar does not show every Horizon path lagging');
  });
  await context.expectAfter('workers-alive', 'it does not show the worker alive', async () => {
    const text = results.get('workers-alive')?.stdout ?? '';
    if (!/"status":\s*"ok"/.test(text)) throw new Error(`workers check: ${text.slice(0, 300)}`);
  });
  await context.expectAfter(
    'payments-after-cursor',
    'it shows payments a stale Horizon cannot have',
    async () => {
      const text = results.get('payments-after-cursor')?.stdout ?? '';
      const records = text.split('\n').filter((line) => line.startsWith('{'));
      if (!/^cursor \d+, hot wallet G[A-Z2-7]{55}$/m.test(text)) throw new Error(`no cursor line: ${text}`);
      if (records.length > 0)
        throw new Error(`${records.length} records are visible on a Horizon that stopped ingesting`);
    },
  );
  context.note(
    `case found: polls go on, every Horizon is at an old ledger, the ${paid.length} payments (up to ledger ${lastPaidLedger}) are not visible`,
  );
}

type WatcherStateRow = { lagSeconds: number; sinceLastPollSeconds: number };

/** The first table of `watcher-state` (psql's aligned format): the deposit_watcher row. */
function watcherState(result: CellResult | undefined): WatcherStateRow {
  const lines = (result?.stdout ?? '').split('\n');
  const header = lines.findIndex((line) => line.includes('lag_seconds'));
  const row = lines[header + 2];
  if (header < 0 || row === undefined) throw new Error('no deposit_watcher row in the output');
  const columns = (lines[header] ?? '').split('|').map((cell) => cell.trim());
  const values = row.split('|').map((cell) => cell.trim());
  const value = (name: string) => Number(values[columns.indexOf(name)]);
  return { lagSeconds: value('lag_seconds'), sinceLastPollSeconds: value('seconds_since_last_poll') };
}

type Credits = { count: number; sumMinor: bigint };

async function chainCredits(
  sql: Sql,
  customers: { alice: Customer; bob: Customer },
): Promise<{ alice: Credits; bob: Credits }> {
  const rows = await sql<{ accountId: string; count: number; sumMinor: bigint }[]>`
    select account_id as "accountId", count(*)::int as count, sum(amount_minor)::int8 as "sumMinor"
    from deposits where provider = 'stellar' and source = 'chain'
      and account_id = any(${[customers.alice.id, customers.bob.id]}::uuid[])
    group by account_id`;
  const of = (id: string): Credits => {
    const row = rows.find((candidate) => candidate.accountId === id);
    return { count: row?.count ?? 0, sumMinor: row?.sumMinor ?? 0n };
  };
  return { alice: of(customers.alice.id), bob: of(customers.bob.id) };
}

type MoneyFigures = { stallCredits: number; creditsPerPaymentMax: number };

/**
 * Per account: as many credits as payments and their sum, each journal posted once per paging
 * token; nothing in suspense; each balance equal to its entries and to what was paid in.
 */
async function checkMoney(
  context: DrillContext,
  sql: Sql,
  customers: { alice: Customer; bob: Customer },
): Promise<MoneyFigures> {
  const expected = {
    alice: [fundedBeforeStall, ...stallPayments.filter((p) => p.to === 'alice').map((p) => p.amount)],
    bob: stallPayments.filter((p) => p.to === 'bob').map((p) => p.amount),
  };
  const credited = await chainCredits(sql, customers);
  for (const name of ['alice', 'bob'] as const) {
    const want = {
      count: expected[name].length,
      sumMinor: expected[name].reduce((sum, a) => sum + xlmMinor(a), 0n),
    };
    const got = credited[name];
    if (got.count !== want.count || got.sumMinor !== want.sumMinor)
      throw new Error(
        `${name}: ${got.count} credits of ${got.sumMinor} minor units, paid ${want.count} of ${want.sumMinor}`,
      );
  }
  const [journals] = await sql<{ max: number; suspense: number }[]>`
    select coalesce(max(count), 0)::int as max,
           (select count(*)::int from deposits d join accounts a on a.id = d.account_id
            where d.provider = 'stellar' and a.type = 'deposit_suspense') as suspense
    from (select count(*) as count from journal_transactions j join deposits d
          on j.reference = 'stellar:' || d.reference and j.kind = 'deposit'
          where d.provider = 'stellar' group by d.reference) per_payment`;
  if (journals?.max !== 1) throw new Error(`a payment has ${journals?.max} deposit journals`);
  if (journals.suspense !== 0) throw new Error(`${journals.suspense} payments went to suspense`);
  const balances = await sql<{ id: string; balanceMinor: bigint; entriesMinor: bigint }[]>`
    select a.id, a.balance_minor as "balanceMinor", coalesce(sum(e.amount_minor), 0)::int8 as "entriesMinor"
    from accounts a left join entries e on e.account_id = a.id
    where a.id = any(${[customers.alice.id, customers.bob.id]}::uuid[]) group by a.id`;
  for (const row of balances) {
    const name = row.id === customers.alice.id ? 'alice' : 'bob';
    if (row.balanceMinor !== credited[name].sumMinor || row.entriesMinor !== row.balanceMinor)
      throw new Error(
        `${name} holds ${row.balanceMinor} (entries ${row.entriesMinor}), credited ${credited[name].sumMinor}`,
      );
  }
  context.note(
    `alice: ${credited.alice.count} credits, ${credited.alice.sumMinor} minor units; ` +
      `bob: ${credited.bob.count} credits, ${credited.bob.sumMinor} minor units; each payment once, none in suspense`,
  );
  return {
    stallCredits: credited.alice.count + credited.bob.count - 1,
    creditsPerPaymentMax: journals.max,
  };
}
