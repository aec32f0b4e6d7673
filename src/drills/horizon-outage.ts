import { selectControls } from '../controls/data.ts';
import { type Drill, type DrillContext, sleep } from './harness.ts';
import {
  activeFaultKinds,
  addFault,
  checkFlowMoney,
  expectEveryPathDown,
  expectReachability,
  expectWaiting,
  openPayoutFlow,
  type Pay,
  type Payout,
  pathGauges,
  type SandboxSettlement,
  startSandboxSettlement,
  waitForPathGauges,
  waitForState,
} from './sandbox-settlement.ts';
import { alertExpression, metricValue, scrapeMetrics } from './support.ts';

const customerLumens = '500';
const customersCount = 2;
const destinationsCount = 3;
const baselinePayouts = 3;
/** The flow during the failover: a payout every 200 ms or so, at most 60 of them. */
const flowIntervalMs = 200;
const flowPayoutsMax = 60;
const flowPayoutsAfterDetection = 4;
const hardDownPayouts = 3;
const detectionMsMax = 10_000;
const settleMsMax = 30_000;
/** Payout rounds run every 100 ms here: twenty rounds in which nothing may be sent. */
const frozenObservationMs = 2_000;
const proposer = 'drill-admin-a';
const approver = 'drill-admin-b';

/**
 * docs/runbooks/horizon-outage.md against `settledesk serve` and its sandbox network, with payouts
 * flowing. Failover: the first Horizon listener goes down (`practice-first-horizon-down`);
 * `stellar_path_up{path="horizon-0"}` drops to 0 on /metrics, triage shows it, and payouts keep
 * settling through horizon-1. Hard-down: every Horizon down and RPC answering 503; every path's
 * gauge is 0 (StellarAllPathsDown's condition), payouts wait and `payouts_waiting_for_network`
 * counts them; the runbook freezes payouts and takes a snapshot; the faults are cleared; the freeze
 * holds until the unfreeze the runbook proposes is approved by a second admin; then every payout
 * settles, each paid exactly once on chain, and the ledger sums to zero.
 */
export const horizonOutageDrill: Drill = {
  name: 'horizon-outage',
  runbook: 'horizon-outage.md',
  description:
    'take the first Horizon down (payouts fail over), then every Horizon and RPC (payouts wait); ' +
    'freeze, recover, unfreeze under the two-person rule; every payout settles once on chain',
  run: async (context) => {
    const world = await startSandboxSettlement(context);
    const flow = await openPayoutFlow(context, world, {
      customers: customersCount,
      lumens: customerLumens,
      destinations: destinationsCount,
    });
    const { pay } = flow;
    await context.step('runbook: every path answers before the fault', async () => {
      const [paths] = await context.cells(['check-stellar-paths', 'check-all-paths-answer']);
      await context.expectAfter('check-stellar-paths', 'it should show every path reachable', async () =>
        expectReachability(paths?.stdout ?? '', { 'horizon-0': true, 'horizon-1': true, rpc: true }),
      );
    });
    await context.step(`payouts flow: ${baselinePayouts} payouts settle`, async () =>
      waitForState(context, world, await pay(baselinePayouts), 'settled', settleMsMax),
    );

    await failover(context, world, pay);
    const waiting = await hardDown(context, world, pay);
    await recover(context, world, waiting);

    await context.step('runbook: nothing stuck, every path answers, the ledger sums to zero', () =>
      context.cells(['check-nothing-stuck', 'check-all-paths-answer', 'check-ledger']),
    );
    await checkFlowMoney(context, world, flow);
  },
};

/**
 * Payouts keep arriving while the first Horizon goes down: one at a time, a bounded number, from
 * before the fault until a few were accepted after it was detected.
 */
function startFlow(pay: Pay): { posted: () => number; stop: () => Promise<Payout[]> } {
  const made: Payout[] = [];
  let stopping = false;
  const running = (async () => {
    while (!stopping && made.length < flowPayoutsMax) {
      made.push(...(await pay(1)));
      await sleep(flowIntervalMs);
    }
  })();
  // A failed request stops the flow; the failure surfaces where the drill stops it.
  running.catch(() => undefined);
  return {
    posted: () => made.length,
    stop: async () => {
      stopping = true;
      await running;
      return made;
    },
  };
}

async function failover(context: DrillContext, world: SandboxSettlement, pay: Pay): Promise<void> {
  const flow = startFlow(pay);
  context.defer('stop the payout flow', async () => {
    await flow.stop().catch(() => undefined);
  });
  const injectedAt = await context.step(
    'inject, with payouts flowing: the first Horizon listener goes down',
    async () => {
      await context.waitFor(
        'the payout flow to start',
        async () => (flow.posted() > 0 ? true : undefined),
        settleMsMax,
      );
      await context.cells(['practice-first-horizon-down'], { yes: true });
      await context.expectAfter(
        'practice-first-horizon-down',
        'no listener_down fault is active',
        async () => {
          if (!(await activeFaultKinds(world)).includes('listener_down')) throw new Error('no fault');
        },
      );
      return performance.now();
    },
  );
  await context.step(
    'detection: stellar_path_up{path="horizon-0"} is 0 on /metrics (HorizonDown)',
    async () => {
      if (!alertExpression('HorizonDown').includes('stellar_path_up{path=~"horizon-.+"} == 0'))
        throw context.fail(
          'the HorizonDown alert is no longer built on stellar_path_up{path=~"horizon-.+"} == 0',
        );
      await waitForPathGauges(context, world, { 'horizon-0': 0, 'horizon-1': 1, rpc: 1 }, detectionMsMax);
      const detectionMs = Math.round(performance.now() - injectedAt);
      context.figure(
        'failoverDetectionMs',
        detectionMs,
        `horizon-0 down on /metrics ${detectionMs} ms after the fault`,
      );
    },
  );
  const { before, postedBefore, flowed } = await context.step(
    `the flow goes on: ${flowPayoutsAfterDetection} more payouts accepted after the detection`,
    async () => {
      const metrics = await scrapeMetrics(world.service);
      const posted = flow.posted();
      await context.waitFor(
        `${flowPayoutsAfterDetection} payouts accepted after the detection`,
        async () => (flow.posted() >= posted + flowPayoutsAfterDetection ? true : undefined),
        settleMsMax,
      );
      return { before: metrics, postedBefore: posted, flowed: await flow.stop() };
    },
  );
  await context.step('runbook: triage shows horizon-0 unreachable, the other paths reachable', async () => {
    const [paths] = await context.cells(['check-stellar-paths']);
    await context.expectAfter(
      'check-stellar-paths',
      'it should show horizon-0 down and the others up',
      async () =>
        expectReachability(paths?.stdout ?? '', { 'horizon-0': false, 'horizon-1': true, rpc: true }),
    );
    const check = await context.cellReports('check-all-paths-answer', 'horizon-0 does not answer');
    await context.expectAfter('check-all-paths-answer', 'it should name horizon-0', async () => {
      if (!`${check.stdout}${check.stderr}`.includes('horizon-0')) throw new Error('horizon-0 is not named');
    });
  });
  await context.step(
    'failover: every payout of the flow settles, through horizon-1 since the fault',
    async () => {
      await waitForState(context, world, flowed, 'settled', settleMsMax);
      const after = await scrapeMetrics(world.service);
      const submitted = (text: string, path: string) =>
        metricValue(text, 'stellar_requests_total', { path, operation: 'submit', outcome: 'ok' });
      if (submitted(after, 'horizon-1') <= submitted(before, 'horizon-1'))
        throw context.fail('no submission succeeded through horizon-1 while horizon-0 was down');
      if (submitted(after, 'horizon-0') !== submitted(before, 'horizon-0'))
        throw context.fail('a submission succeeded through horizon-0 while it was down');
      context.figure(
        'flowPayouts',
        flowed.length,
        `${flowed.length} payouts of the flow settled, ${flowed.length - postedBefore} accepted after horizon-0 was seen down`,
      );
      await context.cells(['check-payouts-waiting']);
    },
  );
}

async function hardDown(context: DrillContext, world: SandboxSettlement, pay: Pay): Promise<Payout[]> {
  const injectedAt = await context.step(
    'inject: every Horizon listener down, RPC answering 503',
    async () => {
      await context.cells(['practice-every-horizon-down'], { yes: true });
      // The runbook's practice cells take Horizon down; RPC's own outage is the RPC runbook's.
      await addFault(world, { kind: 'http_error', status: 503, route: 'rpc' });
      return performance.now();
    },
  );
  const waiting = await context.step(`${hardDownPayouts} payouts are accepted while no path answers`, () =>
    pay(hardDownPayouts),
  );
  await context.step(
    'detection: every stellar_path_up is 0 (StellarAllPathsDown) and payouts_waiting_for_network > 0',
    async () => {
      if (alertExpression('StellarAllPathsDown') !== 'max without (path) (stellar_path_up) == 0')
        throw context.fail(
          'the StellarAllPathsDown alert is no longer max without (path) (stellar_path_up) == 0',
        );
      if (!alertExpression('PayoutsWaitingForNetwork').startsWith('max(payouts_waiting_for_network) > 0'))
        throw context.fail(
          'the PayoutsWaitingForNetwork alert is no longer built on payouts_waiting_for_network',
        );
      const text = await waitForPathGauges(
        context,
        world,
        { 'horizon-0': 0, 'horizon-1': 0, rpc: 0 },
        detectionMsMax,
        (metrics) => metricValue(metrics, 'payouts_waiting_for_network') >= hardDownPayouts,
      );
      if (Math.max(...pathGauges(text).values()) !== 0) throw context.fail('some stellar_path_up is not 0');
      const detectionMs = Math.round(performance.now() - injectedAt);
      context.figure(
        'hardDownDetectionMs',
        detectionMs,
        `every path down and ${metricValue(text, 'payouts_waiting_for_network')} payouts waiting on /metrics ${detectionMs} ms after the faults`,
      );
    },
  );
  await expectEveryPathDown(context, world, waiting, {
    step: 'runbook: triage shows every path down, the logs say payouts wait',
    cell: 'search-logs-no-path',
    what: 'it should find the engine waiting for a path',
    line: 'no Stellar path answered: payouts wait',
  });
  // The runbook freezes before the Stellar configuration is changed and workers restarted; the
  // drill takes that branch so the freeze and the two-person unfreeze are practised too.
  await context.step('runbook: freeze payouts and take a snapshot', async () => {
    await context.cells(['freeze-payouts', 'take-snapshot'], { yes: true });
    await context.expectAfter('freeze-payouts', 'payouts are not frozen', () => expectFrozen(world, true));
  });
  return waiting;
}

async function recover(
  context: DrillContext,
  world: SandboxSettlement,
  waiting: readonly Payout[],
): Promise<void> {
  await context.step('recovery: the faults are cleared and every path answers again', async () => {
    await context.cells(['practice-clear-faults'], { yes: true });
    await context.expectAfter('practice-clear-faults', 'the paths did not come back', () =>
      waitForPathGauges(context, world, { 'horizon-0': 1, 'horizon-1': 1, rpc: 1 }, detectionMsMax),
    );
    await context.cells(['check-all-paths-answer', 'check-stellar-paths']);
  });
  await context.step('the freeze holds: with every path back, nothing is sent', async () => {
    await sleep(frozenObservationMs);
    await context.expectAfter('freeze-payouts', 'a payout was sent while payouts were frozen', async () => {
      await expectWaiting(world, waiting);
      const [sent] = await world.sql<{ count: number }[]>`
        select count(*)::int as count from settlement_attempt_payouts
        where payout_id = any(${waiting.map((payout) => payout.id)}::uuid[])`;
      if (sent?.count !== 0) throw new Error(`${sent?.count} settlement attempts were built for them`);
    });
  });
  const approvedAt = await context.step(
    `runbook: ${proposer} proposes the unfreeze; ${proposer} cannot approve it, ${approver} does`,
    () => unfreezeWithSecondAdmin(context, world),
  );
  await context.step('recovery: every payout that waited settles', async () => {
    await context.expectAfter(
      'propose-unfreeze',
      'the payouts did not settle after the approved unfreeze',
      () => waitForState(context, world, waiting, 'settled', settleMsMax),
    );
    const recoveryMs = Math.round(performance.now() - approvedAt);
    context.figure(
      'recoverySettledMs',
      recoveryMs,
      `the waiting payouts settled ${recoveryMs} ms after the approval`,
    );
  });
}

/** The runbook's proposal, then the two-person rule: not by the proposer, only by a second admin. */
async function unfreezeWithSecondAdmin(context: DrillContext, world: SandboxSettlement): Promise<number> {
  const operator = context.env.SETTLEDESK_OPERATOR;
  context.env.SETTLEDESK_OPERATOR = proposer;
  const [proposed] = await context.cells(['propose-unfreeze'], { yes: true });
  context.env.SETTLEDESK_OPERATOR = operator;
  const { id, hash } = await context.expectAfter(
    'propose-unfreeze',
    'it should print the proposal and its payload hash',
    async () => {
      const [, id, hash] =
        /proposal (\S+) .*\n\s*settledesk approvals approve \S+ --hash (\S+)/.exec(proposed?.stdout ?? '') ??
        [];
      if (id === undefined || hash === undefined)
        throw new Error(`it printed ${proposed?.stdout ?? 'nothing'}`);
      return { id, hash };
    },
  );
  await context.expectAfter('propose-unfreeze', 'a proposal alone must not unfreeze', () =>
    expectFrozen(world, true),
  );
  const own = await context.cli(['approvals', 'approve', id, '--hash', hash, '--as', proposer], world.env);
  if (own.code === 0) throw context.fail('the proposer approved their own unfreeze');
  const second = await context.cli(['approvals', 'approve', id, '--hash', hash, '--as', approver], world.env);
  if (second.code !== 0)
    throw context.fail(`the second admin's approval exited ${second.code}: ${second.stderr.trim()}`);
  const approvedAt = performance.now();
  await context.expectAfter('propose-unfreeze', 'payouts are still frozen after the approval', () =>
    expectFrozen(world, false),
  );
  return approvedAt;
}

/** Read straight from the database: the CLI's `mode show` reads the same row. */
async function expectFrozen(world: SandboxSettlement, frozen: boolean): Promise<void> {
  const controls = await selectControls(world.sql);
  if (controls.payoutsFrozen !== frozen) throw new Error(`payoutsFrozen is ${controls.payoutsFrozen}`);
}
