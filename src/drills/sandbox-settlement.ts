import { Keypair } from '@stellar/stellar-sdk';
import { engineStates } from '../payouts/states.ts';
import { loadConfig } from '../platform/config.ts';
import type { FaultSpec } from '../sandbox/faults.ts';
import { findStellar } from '../stellar/connect.ts';
import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { stellarDecimals } from '../stellar/units.ts';
import { loadWallet } from '../stellar/wallet.ts';
import type { DrillContext } from './harness.ts';
import { openFundedCustomers, type SandboxService, startSandboxService } from './sandbox-service.ts';
import { api, idempotencyKey, scrapeMetrics, xlmMinor } from './support.ts';

/**
 * What the Stellar path drills (horizon-outage, stellar-rpc-outage, stuck-transaction) add to
 * sandbox-service.ts: the sandbox's endpoints and the hot wallet, payouts with amounts that can be
 * told apart on chain, faults through the sandbox control API, each path's `stellar_path_up`, and
 * the money check that ends each drill: every payout settled by one attempt, paid exactly once on
 * chain, nothing else paid, nothing left in `payout_clearing`, nothing refunded.
 */

const requestTimeoutMs = 10_000;
/** Hot-wallet payments read back from Horizon at most (pages of 200); a drill makes a dozen. */
const paymentPagesMax = 10;
const paymentPageSize = 200;

export type Payout = { id: string; source: string; destination: string; amount: string; amountMinor: bigint };
export type Customer = { id: string; fundedMinor: bigint };

export type SandboxSettlement = SandboxService & {
  stellar: StellarEndpoints & { controlUrl: string; friendbotUrl: string };
  hotWallet: string;
};

/**
 * `settledesk serve` on the sandbox (sandbox-service.ts) with the status probe every 250 ms, so
 * `stellar_path_up` follows a fault within a second; then where its sandbox listens and which
 * account is its hot wallet.
 */
export async function startSandboxSettlement(
  context: DrillContext,
  extraEnv: Record<string, string> = {},
): Promise<SandboxSettlement> {
  const drill = await startSandboxService(context, { STATUS_PROBE_INTERVAL_MS: '250', ...extraEnv });
  return context.step('find the sandbox network and the hot wallet', async () => {
    const config = loadConfig(drill.env);
    const endpoints = await findStellar(config);
    const { controlUrl, friendbotUrl } = endpoints;
    if (controlUrl === undefined || friendbotUrl === undefined)
      throw context.fail('the service runs no sandbox network with a control API');
    const hotWallet = (await loadWallet(config)).hotWallet.publicKey();
    context.note(
      `Horizon ${endpoints.horizonUrls.join(', ')}, RPC ${endpoints.rpcUrl}, hot wallet ${hotWallet}`,
    );
    return { ...drill, stellar: { ...endpoints, controlUrl, friendbotUrl }, hotWallet };
  });
}

/** Customer accounts, each funded with `lumens` from the `fees` account. */
export async function openCustomers(
  context: DrillContext,
  world: SandboxSettlement,
  count: number,
  lumens: string,
): Promise<Customer[]> {
  const fundedMinor = xlmMinor(lumens);
  const ids = await openFundedCustomers(
    context,
    world,
    Array.from({ length: count }, () => fundedMinor),
  );
  return ids.map((id) => ({ id, fundedMinor }));
}

export type Pay = (count: number) => Promise<Payout[]>;

export type PayoutFlow = {
  customers: Customer[];
  destinations: string[];
  /** Posts `count` payouts (postPayouts), numbered on from the last, and keeps them in `payouts`. */
  pay: Pay;
  /** Every payout `pay` posted, for the money check that ends the drill. */
  payouts: Payout[];
};

/** The step that opens funded customers and sandbox destinations, and what pays from them. */
export async function openPayoutFlow(
  context: DrillContext,
  world: SandboxSettlement,
  plan: { customers: number; lumens: string; destinations: number },
): Promise<PayoutFlow> {
  const customersText = plan.customers === 1 ? 'a funded customer' : `${plan.customers} funded customers`;
  const destinationsText = plan.destinations === 1 ? 'a destination' : `${plan.destinations} destinations`;
  const { customers, destinations } = await context.step(
    `open ${customersText} and ${destinationsText} on the sandbox`,
    async () => ({
      customers: await openCustomers(context, world, plan.customers, plan.lumens),
      destinations: await newDestinations(world, plan.destinations),
    }),
  );
  const payouts: Payout[] = [];
  // Numbered when called, not when answered: payouts posted concurrently keep distinct amounts.
  let next = 1;
  const pay: Pay = async (count) => {
    const first = next;
    next += count;
    const made = await postPayouts(context, world, { customers, destinations, count, first });
    payouts.push(...made);
    return made;
  };
  return { customers, destinations, pay, payouts };
}

/** What a Stellar path drill's runbook searches its logs for while no path answers. */
export type NoPathLogSearch = { step: string; cell: string; what: string; line: string };

/**
 * While no path answers: the runbook's triage shows every path unreachable, its log search finds
 * the engine's line, `check-all-paths-answer` reports it, and the payouts wait, none failed.
 */
export async function expectEveryPathDown(
  context: DrillContext,
  world: SandboxSettlement,
  waiting: readonly Payout[],
  search: NoPathLogSearch,
): Promise<void> {
  await context.step(search.step, async () => {
    const [paths, , logs] = await context.cells([
      'check-stellar-paths',
      'check-payouts-waiting',
      search.cell,
    ]);
    await context.expectAfter('check-stellar-paths', 'it should show every path unreachable', async () =>
      expectReachability(paths?.stdout ?? '', { 'horizon-0': false, 'horizon-1': false, rpc: false }),
    );
    await context.expectAfter(search.cell, search.what, async () => {
      if (!(logs?.stdout ?? '').includes(search.line)) throw new Error(`no "${search.line}" line`);
    });
    await context.cellReports('check-all-paths-answer', 'no path answers');
  });
  await context.step('payouts wait: accepted or submitted, none failed or refunded', () =>
    expectWaiting(world, waiting),
  );
}

/** The money check (checkMoneyIntact) of every payout of the flow, as a step, and their figure. */
export async function checkFlowMoney(
  context: DrillContext,
  world: SandboxSettlement,
  flow: PayoutFlow,
): Promise<void> {
  const { paymentsOnChain } = await context.step(
    'money: every payout settled by one attempt, paid exactly once on chain; payout_clearing is empty',
    () => checkMoneyIntact(world, flow.payouts, flow.customers),
  );
  context.figure(
    'payouts',
    flow.payouts.length,
    `${flow.payouts.length} payouts settled; ${paymentsOnChain} payments on chain`,
  );
}

/** Fresh accounts on the sandbox network for payouts to land in (friendbot creates them). */
export async function newDestinations(world: SandboxSettlement, count: number): Promise<string[]> {
  const destinations: string[] = [];
  for (let index = 0; index < count; index += 1) {
    const destination = Keypair.random().publicKey();
    const response = await fetch(`${world.stellar.friendbotUrl}?addr=${destination}`, {
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`friendbot answered ${response.status}`);
    destinations.push(destination);
  }
  return destinations;
}

/**
 * `count` payouts through POST /v1/payouts (service token, an Idempotency-Key each), from the
 * customers in turn to the destinations in turn. Every amount is distinct (1 lumen and `first`,
 * `first + 1`… stroops), so each payout's payment can be recognised on chain.
 */
export async function postPayouts(
  context: DrillContext,
  world: SandboxSettlement,
  plan: { customers: readonly Customer[]; destinations: readonly string[]; count: number; first: number },
): Promise<Payout[]> {
  const payouts: Payout[] = [];
  for (let index = 0; index < plan.count; index += 1) {
    const number = plan.first + index;
    const input = {
      source: plan.customers[index % plan.customers.length]?.id ?? '',
      destination: plan.destinations[index % plan.destinations.length] ?? '',
      amount: `1.${String(number).padStart(stellarDecimals, '0')}`,
    };
    const posted = await api<{ id: string; state: string }>(
      world.service,
      world.tokens.service,
      'POST',
      '/v1/payouts',
      { sourceAccountId: input.source, destination: input.destination, asset: 'XLM', amount: input.amount },
      { 'idempotency-key': idempotencyKey(context) },
    );
    if (posted.status !== 201 || posted.body.state !== 'accepted')
      throw context.fail(`POST /v1/payouts answered ${posted.status}: ${JSON.stringify(posted.body)}`);
    payouts.push({ ...input, id: posted.body.id, amountMinor: xlmMinor(input.amount) });
  }
  return payouts;
}

async function payoutStates(
  world: SandboxSettlement,
  payouts: readonly Payout[],
): Promise<Map<string, string>> {
  const ids = payouts.map((payout) => payout.id);
  const rows = await world.sql<{ id: string; state: string }[]>`
    select id, state from payouts where id = any(${ids}::uuid[])`;
  return new Map(rows.map((row) => [row.id, row.state]));
}

/** Waits until every payout is in `state`; the error names the ones that are not, and their state. */
export async function waitForState(
  context: DrillContext,
  world: SandboxSettlement,
  payouts: readonly Payout[],
  state: string,
  timeoutMs: number,
): Promise<void> {
  let last = new Map<string, string>();
  try {
    await context.waitFor(
      `${payouts.length} payouts to be ${state}`,
      async () => {
        last = await payoutStates(world, payouts);
        return payouts.every((payout) => last.get(payout.id) === state) ? true : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    const others = payouts
      .filter((payout) => last.get(payout.id) !== state)
      .map((payout) => `${payout.id} is ${last.get(payout.id) ?? 'missing'}`);
    throw new Error(`${error instanceof Error ? error.message : String(error)}: ${others.join(', ')}`);
  }
}

/** Fails unless every payout still waits: accepted or submitted, never failed or refunded. */
export async function expectWaiting(world: SandboxSettlement, payouts: readonly Payout[]): Promise<void> {
  const states = await payoutStates(world, payouts);
  const waiting: readonly string[] = engineStates;
  const moved = payouts.filter((payout) => !waiting.includes(states.get(payout.id) ?? ''));
  if (moved.length > 0)
    throw new Error(
      `payouts should wait, but ${moved.map((payout) => `${payout.id} is ${states.get(payout.id)}`).join(', ')}`,
    );
}

/** `stellar_path_up` per path, as exported (a path not probed yet is absent, not 0). */
export function pathGauges(metricsText: string): Map<string, number> {
  const gauges = new Map<string, number>();
  for (const match of metricsText.matchAll(/^stellar_path_up\{path="([^"]+)"\} (\S+)$/gm))
    gauges.set(match[1] ?? '', Number(match[2]));
  return gauges;
}

/**
 * Polls the service's /metrics until every path named in `expected` exports that
 * `stellar_path_up` value; the error shows what it exported last.
 */
export async function waitForPathGauges(
  context: DrillContext,
  world: SandboxSettlement,
  expected: Record<string, 0 | 1>,
  timeoutMs: number,
  also: (metricsText: string) => boolean = () => true,
): Promise<string> {
  let last = new Map<string, number>();
  try {
    return await context.waitFor(
      `stellar_path_up ${JSON.stringify(expected)}`,
      async () => {
        const text = await scrapeMetrics(world.service);
        last = pathGauges(text);
        const matches = Object.entries(expected).every(([path, value]) => last.get(path) === value);
        return matches && also(text) ? text : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    const seen = [...last].map(([path, value]) => `${path}=${value}`).join(', ') || 'no stellar_path_up';
    throw new Error(`${error instanceof Error ? error.message : String(error)}; last exported: ${seen}`);
  }
}

/** A fault through the sandbox control API, for a fault no cell of the drill's runbook injects. */
export async function addFault(world: SandboxSettlement, spec: FaultSpec): Promise<string> {
  const response = await fetch(`${world.stellar.controlUrl}/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  const body = (await response.json()) as { fault?: { id: string } };
  if (response.status !== 201 || body.fault === undefined)
    throw new Error(`the sandbox refused fault ${JSON.stringify(spec)} with ${response.status}`);
  return body.fault.id;
}

type ActiveFault = { id: string; kind: string; route?: string; listener?: number };

async function activeFaults(world: SandboxSettlement): Promise<ActiveFault[]> {
  const response = await fetch(`${world.stellar.controlUrl}/faults`, {
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  if (!response.ok) throw new Error(`the sandbox control API answered ${response.status}`);
  return ((await response.json()) as { faults: ActiveFault[] }).faults;
}

/** The kinds of the sandbox's active faults, to check that an injecting cell injected. */
export async function activeFaultKinds(world: SandboxSettlement): Promise<string[]> {
  return (await activeFaults(world)).map((fault) => fault.kind);
}

/** Clears the active faults that `matches` selects, the others stay; answers how many it cleared. */
export async function clearFaults(
  world: SandboxSettlement,
  matches: (fault: ActiveFault) => boolean,
): Promise<number> {
  const chosen = (await activeFaults(world)).filter(matches);
  for (const fault of chosen) {
    const response = await fetch(`${world.stellar.controlUrl}/faults/${fault.id}`, {
      method: 'DELETE',
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`the sandbox did not clear fault ${fault.id}: ${response.status}`);
  }
  return chosen.length;
}

/** `settledesk triage stellar` as text: each path's `reachable` column (`yes` or `NO`). */
function reachability(tableText: string): Map<string, boolean> {
  const paths = new Map<string, boolean>();
  for (const match of tableText.matchAll(/^(horizon-\d+|rpc)\s+(yes|NO)\b/gm))
    paths.set(match[1] ?? '', match[2] === 'yes');
  return paths;
}

/** Fails unless the triage table shows these paths reachable (true) or not (false). */
export function expectReachability(tableText: string, expected: Record<string, boolean>): void {
  const seen = reachability(tableText);
  const wrong = Object.entries(expected).filter(([path, up]) => seen.get(path) !== up);
  if (wrong.length > 0)
    throw new Error(
      `expected ${wrong.map(([path, up]) => `${path} ${up ? 'reachable' : 'unreachable'}`).join(', ')}, ` +
        `it shows ${[...seen].map(([path, up]) => `${path} ${up ? 'yes' : 'NO'}`).join(', ') || 'no path'}`,
    );
}

type PaymentRecord = {
  type: string;
  from?: string;
  to?: string;
  amount?: string;
  transaction_successful: boolean;
  transaction_hash: string;
};

/** Successful payments out of the hot wallet, as the sandbox's Horizon lists them. */
async function hotWalletPayments(
  world: SandboxSettlement,
): Promise<{ to: string; amountMinor: bigint; hash: string }[]> {
  const found: { to: string; amountMinor: bigint; hash: string }[] = [];
  let url: string | undefined =
    `${world.stellar.horizonUrls[0]}/accounts/${world.hotWallet}/payments?order=asc&limit=${paymentPageSize}`;
  for (let page = 0; page < paymentPagesMax && url !== undefined; page += 1) {
    const response = await fetch(url, { signal: AbortSignal.timeout(requestTimeoutMs) });
    if (!response.ok) throw new Error(`Horizon answered ${response.status} for the hot wallet's payments`);
    const body = (await response.json()) as {
      _embedded: { records: PaymentRecord[] };
      _links: { next?: { href: string } };
    };
    const records = body._embedded.records;
    for (const record of records) {
      if (record.type !== 'payment' || record.from !== world.hotWallet || !record.transaction_successful)
        continue;
      found.push({
        to: record.to ?? '',
        amountMinor: xlmMinor(record.amount ?? ''),
        hash: record.transaction_hash,
      });
    }
    url = records.length === paymentPageSize ? body._links.next?.href : undefined;
  }
  return found;
}

/**
 * Money intact after the drill: every payout settled by exactly one succeeded attempt; on chain,
 * each payout's amount paid exactly once to its destination, by that attempt's transaction, and
 * no other payment out of the hot wallet; `payout_clearing` holds nothing; no payout refunded;
 * each customer holds what it was funded less what it paid out.
 */
export async function checkMoneyIntact(
  world: SandboxSettlement,
  payouts: readonly Payout[],
  customers: readonly Customer[],
): Promise<{ paymentsOnChain: number }> {
  const ids = payouts.map((payout) => payout.id);
  const rows = await world.sql<{ id: string; state: string; succeeded: number; hash: string | null }[]>`
    select p.id, p.state,
      count(a.id) filter (where a.state = 'succeeded')::int as succeeded,
      min(a.hash) filter (where a.state = 'succeeded') as hash
    from payouts p
    left join settlement_attempt_payouts ap on ap.payout_id = p.id
    left join settlement_attempts a on a.id = ap.attempt_id
    where p.id = any(${ids}::uuid[])
    group by p.id, p.state`;
  const byId = new Map(rows.map((row) => [row.id, row]));
  const onChain = await hotWalletPayments(world);
  for (const payout of payouts) {
    const row = byId.get(payout.id);
    if (row?.state !== 'settled' || row.succeeded !== 1)
      throw new Error(
        `payout ${payout.id} is ${row?.state ?? 'missing'} with ${row?.succeeded ?? 0} succeeded attempts, not settled by one`,
      );
    const paid = onChain.filter(
      (payment) => payment.to === payout.destination && payment.amountMinor === payout.amountMinor,
    );
    if (paid.length !== 1)
      throw new Error(`payout ${payout.id} (${payout.amount} XLM) was paid ${paid.length} times on chain`);
    if (paid[0]?.hash !== row.hash)
      throw new Error(
        `payout ${payout.id} was paid by ${paid[0]?.hash}, not by its settled attempt ${row.hash}`,
      );
  }
  if (onChain.length !== payouts.length)
    throw new Error(
      `${onChain.length} payments left the hot wallet for ${payouts.length} payouts: a payment no payout explains`,
    );
  const [clearing] = await world.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where type = 'payout_clearing' and asset = 'XLM'`;
  if (clearing?.balance !== 0n) throw new Error(`payout_clearing holds ${clearing?.balance} stroops, not 0`);
  const [refunds] = await world.sql<{ count: number }[]>`
    select count(*)::int as count from journal_transactions where kind = 'payout_refund'`;
  if (refunds?.count !== 0) throw new Error(`${refunds?.count} payouts were refunded`);
  const balances = await world.sql<{ id: string; balance: bigint }[]>`
    select id, balance_minor as balance from accounts
    where id = any(${customers.map((customer) => customer.id)}::uuid[])`;
  for (const customer of customers) {
    const paidOut = payouts
      .filter((payout) => payout.source === customer.id)
      .reduce((sum, payout) => sum + payout.amountMinor, 0n);
    const balance = balances.find((row) => row.id === customer.id)?.balance;
    if (balance !== customer.fundedMinor - paidOut)
      throw new Error(
        `customer ${customer.id} holds ${balance} stroops: funded ${customer.fundedMinor}, paid out ${paidOut}`,
      );
  }
  return { paymentsOnChain: onChain.length };
}
