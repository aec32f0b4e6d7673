import { breakerHalfOpenAfterMs } from '../stellar/settlement-chain.ts';
import type { Drill, DrillContext } from './harness.ts';
import {
  activeFaultKinds,
  addFault,
  checkFlowMoney,
  clearFaults,
  expectEveryPathDown,
  expectReachability,
  openPayoutFlow,
  type Pay,
  type Payout,
  type SandboxSettlement,
  startSandboxSettlement,
  waitForPathGauges,
  waitForState,
} from './sandbox-settlement.ts';
import { alertExpression, checkLedgerBalanced, metricValue, scrapeMetrics } from './support.ts';

const customerLumens = '200';
const customersCount = 2;
const destinationsCount = 2;
const baselinePayouts = 2;
const horizonOnlyPayouts = 4;
const allDownPayouts = 3;
const afterRecoveryPayouts = 2;
const detectionMsMax = 10_000;
/** RPC's breaker half-opens 5 s after it opened; a submission through RPC polls for up to 30 s. */
const settleMsMax = 40_000;

/**
 * docs/runbooks/stellar-rpc-outage.md against `settledesk serve` and its sandbox network. RPC goes
 * down (`practice-rpc-down`: every RPC request answers 503) while Horizon answers:
 * `stellar_path_up{path="rpc"}` is 0 on /metrics (StellarRpcDown), readiness and triage name it,
 * and payouts keep settling through Horizon, not touching RPC. Then every Horizon goes down too, so
 * RPC was the last path: nothing answers, and as docs/payouts.md says, payouts wait (not failed,
 * not refunded) with `payouts_waiting_for_network` counting them. RPC comes back first: alone, the
 * last path, it settles what waited. Then the faults are cleared, every path answers, and every
 * payout was paid exactly once on chain with the ledger balanced.
 */
export const stellarRpcOutageDrill: Drill = {
  name: 'stellar-rpc-outage',
  runbook: 'stellar-rpc-outage.md',
  description:
    'take Stellar RPC down (payouts settle through Horizon), then Horizon too (payouts wait); ' +
    'RPC alone settles them when it returns; every payout settles once on chain',
  run: async (context) => {
    const world = await startSandboxSettlement(context);
    const flow = await openPayoutFlow(context, world, {
      customers: customersCount,
      lumens: customerLumens,
      destinations: destinationsCount,
    });
    const { pay } = flow;
    await context.step('runbook: RPC and every Horizon answer before the fault', async () => {
      const [paths, readiness] = await context.cells([
        'check-stellar-paths',
        'check-readiness-rpc',
        'check-rpc-health',
        'check-rpc-latest-ledger',
        'check-all-paths-answer',
      ]);
      await context.expectAfter('check-stellar-paths', 'it should show every path reachable', async () =>
        expectReachability(paths?.stdout ?? '', { 'horizon-0': true, 'horizon-1': true, rpc: true }),
      );
      await context.expectAfter(
        'check-readiness-rpc',
        'it should report the stellar-rpc check ok',
        async () => expectReadiness(readiness?.stdout ?? '', 'ok'),
      );
    });
    await context.step(`payouts flow: ${baselinePayouts} payouts settle`, async () =>
      waitForState(context, world, await pay(baselinePayouts), 'settled', settleMsMax),
    );

    await rpcDown(context, world, pay);
    const waiting = await horizonDownToo(context, world, pay);
    await recover(context, world, waiting, pay);

    await context.step('the ledger sums to zero', () => checkLedgerBalanced(context));
    await checkFlowMoney(context, world, flow);
  },
};

async function rpcDown(context: DrillContext, world: SandboxSettlement, pay: Pay): Promise<void> {
  const injectedAt = await context.step('inject: every RPC request answers 503', async () => {
    await context.cells(['practice-rpc-down'], { yes: true });
    await context.expectAfter('practice-rpc-down', 'no http_error fault is active', async () => {
      if (!(await activeFaultKinds(world)).includes('http_error')) throw new Error('no fault');
    });
    return performance.now();
  });
  await context.step('detection: stellar_path_up{path="rpc"} is 0 on /metrics (StellarRpcDown)', async () => {
    if (alertExpression('StellarRpcDown') !== 'stellar_path_up{path="rpc"} == 0')
      throw context.fail('the StellarRpcDown alert is no longer stellar_path_up{path="rpc"} == 0');
    await waitForPathGauges(context, world, { 'horizon-0': 1, 'horizon-1': 1, rpc: 0 }, detectionMsMax);
    const detectionMs = Math.round(performance.now() - injectedAt);
    context.figure('detectionMs', detectionMs, `rpc down on /metrics ${detectionMs} ms after the fault`);
  });
  await context.step('runbook: readiness and triage name RPC, the RPC checks fail', async () => {
    const [readiness, paths] = await context.cells(['check-readiness-rpc', 'check-stellar-paths']);
    await context.expectAfter(
      'check-readiness-rpc',
      'it should report the stellar-rpc check down',
      async () => expectReadiness(readiness?.stdout ?? '', 'down'),
    );
    await context.expectAfter(
      'check-stellar-paths',
      'it should show rpc down and every Horizon up',
      async () =>
        expectReachability(paths?.stdout ?? '', { 'horizon-0': true, 'horizon-1': true, rpc: false }),
    );
    await context.cellReports('check-rpc-health', 'RPC does not answer getHealth');
    const check = await context.cellReports('check-all-paths-answer', 'rpc does not answer');
    await context.expectAfter('check-all-paths-answer', 'it should name rpc and only rpc', async () => {
      if (!/not answering: rpc$/m.test(`${check.stdout}${check.stderr}`))
        throw new Error('it does not say "not answering: rpc"');
    });
  });
  await context.step(
    `with RPC down, ${horizonOnlyPayouts} payouts settle through Horizon alone`,
    async () => {
      const before = await scrapeMetrics(world.service);
      await waitForState(context, world, await pay(horizonOnlyPayouts), 'settled', settleMsMax);
      const after = await scrapeMetrics(world.service);
      const horizonSubmits = (text: string) =>
        metricValue(text, 'stellar_requests_total', {
          path: 'horizon-0',
          operation: 'submit',
          outcome: 'ok',
        });
      // Readiness probes each path through the engine's breakers (operation `health`): not settlement.
      const rpcRequests = (text: string) =>
        metricValue(text, 'stellar_requests_total', { path: 'rpc' }) -
        metricValue(text, 'stellar_requests_total', { path: 'rpc', operation: 'health' });
      if (horizonSubmits(after) <= horizonSubmits(before))
        throw context.fail('no submission succeeded through horizon-0');
      if (rpcRequests(after) !== rpcRequests(before))
        throw context.fail('the engine sent requests to RPC although Horizon answered');
      await context.cells(['check-payouts-waiting']);
    },
  );
}

async function horizonDownToo(context: DrillContext, world: SandboxSettlement, pay: Pay): Promise<Payout[]> {
  const injectedAt = await context.step(
    'inject: every Horizon listener goes down too; RPC was the last path',
    async () => {
      // This runbook's practice cells break RPC only; Horizon's outage is the Horizon runbook's.
      await addFault(world, { kind: 'listener_down', listener: 0 });
      await addFault(world, { kind: 'listener_down', listener: 1 });
      return performance.now();
    },
  );
  const waiting = await context.step(`${allDownPayouts} payouts are accepted while no path answers`, () =>
    pay(allDownPayouts),
  );
  await context.step(
    'detection: every stellar_path_up is 0 and payouts_waiting_for_network > 0',
    async () => {
      const text = await waitForPathGauges(
        context,
        world,
        { 'horizon-0': 0, 'horizon-1': 0, rpc: 0 },
        detectionMsMax,
        (metrics) => metricValue(metrics, 'payouts_waiting_for_network') >= allDownPayouts,
      );
      const detectionMs = Math.round(performance.now() - injectedAt);
      context.figure(
        'allDownDetectionMs',
        detectionMs,
        `every path down and ${metricValue(text, 'payouts_waiting_for_network')} payouts waiting on /metrics ${detectionMs} ms after Horizon went down`,
      );
    },
  );
  await expectEveryPathDown(context, world, waiting, {
    step: 'runbook: triage shows no path, the logs name RPC among the failed paths',
    cell: 'search-logs-rpc',
    what: 'it should find the engine failing through RPC',
    line: 'no Stellar path answered',
  });
  return waiting;
}

async function recover(
  context: DrillContext,
  world: SandboxSettlement,
  waiting: readonly Payout[],
  pay: Pay,
): Promise<void> {
  await context.step(
    'recovery: RPC answers again first; as the last path it settles what waited',
    async () => {
      const before = await scrapeMetrics(world.service);
      const cleared = await clearFaults(
        world,
        (fault) => fault.kind === 'http_error' && fault.route === 'rpc',
      );
      if (cleared !== 1) throw context.fail(`expected one RPC fault to clear, found ${cleared}`);
      const clearedAt = performance.now();
      await waitForPathGauges(context, world, { 'horizon-0': 0, 'horizon-1': 0, rpc: 1 }, detectionMsMax);
      await waitForState(context, world, waiting, 'settled', settleMsMax);
      const rpcSubmits = (text: string) =>
        metricValue(text, 'stellar_requests_total', { path: 'rpc', operation: 'submit', outcome: 'ok' });
      if (rpcSubmits(await scrapeMetrics(world.service)) <= rpcSubmits(before))
        throw context.fail('the waiting payouts settled, but not through RPC');
      const settledMs = Math.round(performance.now() - clearedAt);
      context.figure(
        'rpcAloneSettledMs',
        settledMs,
        `RPC alone settled the waiting payouts ${settledMs} ms after it answered again`,
      );
    },
  );
  await context.step('recovery: the faults are cleared and every path answers', async () => {
    await context.cells(['practice-clear-faults'], { yes: true });
    await context.expectAfter('practice-clear-faults', 'the paths did not come back', () =>
      waitForPathGauges(context, world, { 'horizon-0': 1, 'horizon-1': 1, rpc: 1 }, detectionMsMax),
    );
    await context.cells(['check-all-paths-answer']);
    // The API's own chain (readiness) keeps its RPC breaker open until breakerHalfOpenAfterMs after
    // its last failure, while the engine's paths above may already answer: the cell is run again,
    // as a person would, until the breaker has half-opened and readiness says ok.
    await context.expectAfter('check-readiness-rpc', 'it should report the stellar-rpc check ok again', () =>
      context.waitFor(
        'the stellar-rpc readiness check ok again',
        async () => {
          const [readiness] = await context.cells(['check-readiness-rpc']);
          expectReadiness(readiness?.stdout ?? '', 'ok');
          return true;
        },
        breakerHalfOpenAfterMs + detectionMsMax,
      ),
    );
    await context.cells(['check-rpc-health']);
  });
  await context.step(`after the recovery, ${afterRecoveryPayouts} payouts settle`, async () =>
    waitForState(context, world, await pay(afterRecoveryPayouts), 'settled', settleMsMax),
  );
}

/** `check-readiness-rpc` prints the `stellar-rpc` readiness check as JSON. */
function expectReadiness(output: string, status: 'ok' | 'down'): void {
  const check = JSON.parse(output) as { status?: string; detail?: string } | null;
  if (check?.status !== status) throw new Error(`stellar-rpc is ${JSON.stringify(check)}, not ${status}`);
}
