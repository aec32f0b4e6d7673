import type { Drill, DrillContext } from './harness.ts';
import { runScheduledTask } from './sandbox-service.ts';
import {
  activeFaultKinds,
  checkMoneyIntact,
  openPayoutFlow,
  type Payout,
  type SandboxSettlement,
  startSandboxSettlement,
  waitForState,
} from './sandbox-settlement.ts';
import { alertExpression, checkLedgerBalanced, metricValue, scrapeMetrics } from './support.ts';

/**
 * The stuck threshold: RECONCILIATION_STUCK_AFTER_SECONDS, short for the drill (production's is
 * 30 minutes), and the same age for the runbook's `OLDER_THAN`, so that the alert's metric and the
 * runbook's triage see the payout as stuck at the same moment. It is most of the drill's duration.
 */
const stuckAfterSeconds = 15;
const customerLumens = '100';
/** Seconds beyond the threshold the payout may take to become stuck, and then to settle. */
const stuckWaitMsMax = (stuckAfterSeconds + 30) * 1_000;
const settleMsMax = 20_000;
const detectionMsMax = 20_000;
const stuckTask = 'reconcile_stuck_settlements';

type Attempt = {
  id: string;
  hash: string;
  state: string;
  submissions: number;
  maxTime: bigint;
  maxLedger: number;
  createdAt: Date;
  resolvedAt: Date | null;
};

/**
 * docs/runbooks/stuck-transaction-recovery.md against `settledesk serve` and its sandbox network.
 * Ledgers freeze (`practice-freeze-ledgers`), so a payout's transaction is submitted but neither
 * applied nor refused. Past the stuck threshold the service's own stuck_settlements task puts it in
 * `payouts_stuck{state="submitted"}` on /metrics (StuckSettlements), and the runbook's cells pick
 * it with its live hash, look the hash up on Horizon and RPC, and find its window still open. The
 * engine meanwhile sends the same envelope again and never builds a second transaction while the
 * window is open. The operator's fix, ledgers closing again (`practice-clear-faults`), lets the
 * transaction apply; `check-payout-final` shows it settled, paid exactly once on chain.
 */
export const stuckTransactionDrill: Drill = {
  name: 'stuck-transaction',
  runbook: 'stuck-transaction-recovery.md',
  description:
    'freeze ledgers so a submitted payout stays stuck past the threshold; the runbook follows its hash, ' +
    'ledgers resume, it settles once on chain and was never rebuilt while its window was open',
  run: async (context) => {
    const world = await startSandboxSettlement(context, {
      RECONCILIATION_STUCK_AFTER_SECONDS: String(stuckAfterSeconds),
    });
    context.env.OLDER_THAN = `${stuckAfterSeconds}s`;
    const flow = await openPayoutFlow(context, world, {
      customers: 1,
      lumens: customerLumens,
      destinations: 1,
    });
    const baseline = await context.step('before the fault: a payout settles, nothing is stuck', async () => {
      const payouts = await flow.pay(1);
      await waitForState(context, world, payouts, 'settled', settleMsMax);
      await context.cellReports('pick-stuck-payout', `no payout has been stuck for ${stuckAfterSeconds}s`);
      return payouts;
    });

    await context.step('inject: ledgers stop closing', async () => {
      await context.cells(['practice-freeze-ledgers'], { yes: true });
      await context.expectAfter('practice-freeze-ledgers', 'no freeze_ledgers fault is active', async () => {
        if (!(await activeFaultKinds(world)).includes('freeze_ledgers')) throw new Error('no fault');
      });
    });
    const stuck = await context.step('a payout is accepted, and its transaction submitted', async () => {
      const [payout] = await flow.pay(1);
      if (payout === undefined) throw context.fail('no payout');
      await waitForState(context, world, [payout], 'submitted', settleMsMax);
      const [attempt] = await attemptsOf(world, payout);
      if (attempt === undefined) throw context.fail(`payout ${payout.id} is submitted without an attempt`);
      context.note(`payout ${payout.id}: transaction ${attempt.hash}, window to ledger ${attempt.maxLedger}`);
      return { payout, attempt };
    });

    await detect(context, world, stuck.payout);
    await investigate(context, world, stuck.payout, stuck.attempt);

    const resumedAt = await context.step('the fix: ledgers close again', async () => {
      await context.cells(['practice-clear-faults'], { yes: true });
      return performance.now();
    });
    await context.step('recovery: the stuck payout settles, and the runbook confirms it', async () => {
      await context.expectAfter(
        'practice-clear-faults',
        'the payout did not settle after ledgers resumed',
        () => waitForState(context, world, [stuck.payout], 'settled', settleMsMax),
      );
      const settledMs = Math.round(performance.now() - resumedAt);
      context.figure('settledAfterResumeMs', settledMs, `settled ${settledMs} ms after ledgers resumed`);
      const [final] = await context.cells(['check-payout-final', 'check-nothing-stuck']);
      await context.expectAfter('check-payout-final', 'it should show the payout settled', async () => {
        const shown = JSON.parse(final?.stdout ?? '') as { id?: string; state?: string };
        if (shown.id !== stuck.payout.id || shown.state !== 'settled')
          throw new Error(`it shows ${JSON.stringify(shown)}`);
      });
    });
    await context.step('the alert clears: payouts_stuck{state="submitted"} is 0 again', async () => {
      await runScheduledTask(world, stuckTask);
      const stuckNow = metricValue(await scrapeMetrics(world.service), 'payouts_stuck', {
        state: 'submitted',
      });
      if (stuckNow !== 0)
        throw context.fail(`payouts_stuck{state="submitted"} is ${stuckNow} after the payout settled`);
    });

    await context.step(
      'one live transaction at a time: never rebuilt while its window was open',
      async () => {
        const attempts = await attemptsOf(world, stuck.payout);
        expectOneLiveWindow(attempts);
        context.figure(
          'attempts',
          attempts.length,
          `${attempts.length} attempt(s); the first sent ${attempts[0]?.submissions} times with hash ${attempts[0]?.hash}`,
        );
      },
    );
    await context.step('the ledger sums to zero', () => checkLedgerBalanced(context));
    await context.step('money: both payouts settled once, each paid exactly once on chain', () =>
      checkMoneyIntact(world, [...baseline, stuck.payout], flow.customers),
    );
  },
};

async function detect(context: DrillContext, world: SandboxSettlement, payout: Payout): Promise<void> {
  await context.step(
    `detection: past ${stuckAfterSeconds}s, payouts_stuck{state="submitted"} > 0 on /metrics`,
    async () => {
      if (alertExpression('StuckSettlements') !== 'max by (state) (payouts_stuck) > 0')
        throw context.fail('the StuckSettlements alert is no longer max by (state) (payouts_stuck) > 0');
      await context.waitFor(
        `payout ${payout.id} to be ${stuckAfterSeconds}s old`,
        async () => {
          const [row] = await world.sql<{ old: boolean }[]>`
          select now() - created_at >= make_interval(secs => ${stuckAfterSeconds}::int) as old
          from payouts where id = ${payout.id}::uuid`;
          return row?.old ? true : undefined;
        },
        stuckWaitMsMax,
      );
      const [row] = await world.sql<
        { state: string }[]
      >`select state from payouts where id = ${payout.id}::uuid`;
      if (row?.state !== 'submitted')
        throw context.fail(`payout ${payout.id} is ${row?.state}, not stuck in submitted`);
      // The worker runs stuck_settlements every minute; the drill runs that job now instead of
      // waiting for the next minute to start.
      const stuckNow = await context.waitFor(
        'payouts_stuck{state="submitted"} above 0',
        async () => {
          await runScheduledTask(world, stuckTask);
          const value = metricValue(await scrapeMetrics(world.service), 'payouts_stuck', {
            state: 'submitted',
          });
          return value > 0 ? value : undefined;
        },
        detectionMsMax,
      );
      context.note(`payouts_stuck{state="submitted"} ${stuckNow}`);
    },
  );
}

async function investigate(
  context: DrillContext,
  world: SandboxSettlement,
  payout: Payout,
  attempt: Attempt,
): Promise<void> {
  await context.step('runbook: pick the stuck payout, follow its hash, check its window', async () => {
    const [picked] = await context.cells(['pick-stuck-payout']);
    await context.expectAfter(
      'pick-stuck-payout',
      'it should follow the stuck payout and its live hash',
      async () => {
        const followed = /following payout (\S+), live transaction (\S+)/.exec(picked?.stdout ?? '');
        if (followed?.[1] !== payout.id || followed[2] !== attempt.hash)
          throw new Error(
            `it follows ${followed?.[1]} / ${followed?.[2]}, not ${payout.id} / ${attempt.hash}`,
          );
      },
    );
    // What the cell exported, for the next cells: exports carry only within one call.
    Object.assign(context.env, { PAYOUT_ID: payout.id, HASH: attempt.hash });
    const results = await context.cells([
      'show-payout-timeline',
      'lookup-hash-on-horizon',
      'lookup-hash-on-rpc',
      'check-window',
      'list-live-attempts',
      'search-logs-attempts',
    ]);
    const output = (name: string) => results.find((result) => result.name === name)?.stdout ?? '';
    await context.expectAfter('lookup-hash-on-horizon', 'Horizon should not know the hash yet', async () => {
      if (!/"status": 404/.test(output('lookup-hash-on-horizon'))) throw new Error('no 404 in its output');
    });
    await context.expectAfter('lookup-hash-on-rpc', 'RPC should answer NOT_FOUND', async () => {
      if (!/"status": "NOT_FOUND"/.test(output('lookup-hash-on-rpc')))
        throw new Error('no NOT_FOUND in its output');
    });
    await context.expectAfter(
      'check-window',
      'it should show the attempt submitted with its window open',
      async () => expectWindowOpen(output('check-window')),
    );
    // The window is open and no ledger closes: the engine may only send the same envelope again.
    const attempts = await attemptsOf(world, payout);
    if (attempts.length !== 1 || attempts[0]?.hash !== attempt.hash)
      throw context.fail(`the payout has ${attempts.length} attempts while its first window is open`);
  });
}

/** `check-window` prints the attempt (state, maxLedger, maxTime…) and then Horizon's latest ledger. */
function expectWindowOpen(text: string): void {
  const state = /"state": "(\w+)"/.exec(text)?.[1];
  const maxLedger = Number(/"maxLedger": (\d+)/.exec(text)?.[1]);
  const maxTime = Date.parse(/"maxTime": "([^"]+)"/.exec(text)?.[1] ?? '');
  const latest = Number(/"history_latest_ledger": (\d+)/.exec(text)?.[1]);
  const closedAt = Date.parse(/"history_latest_ledger_closed_at": "([^"]+)"/.exec(text)?.[1] ?? '');
  if (state !== 'submitted') throw new Error(`the attempt is ${state}, not submitted`);
  if (!(latest < maxLedger))
    throw new Error(`latest ledger ${latest} is not below the max ledger ${maxLedger}`);
  if (!(closedAt <= maxTime))
    throw new Error(`the latest ledger closed after the max time ${new Date(maxTime).toISOString()}`);
}

/**
 * The rule of src/payouts/engine.ts: a payout is rebuilt only after the old transaction can never
 * apply. So one attempt (it applied), or a second one built only after the first ended (expired
 * or failed on chain) and after the first's max time had passed.
 */
function expectOneLiveWindow(attempts: readonly Attempt[]): void {
  const [first, second, ...more] = attempts;
  if (first === undefined || more.length > 0) throw new Error(`${attempts.length} attempts for one payout`);
  if (second === undefined) {
    if (first.state !== 'succeeded') throw new Error(`the only attempt is ${first.state}`);
    return;
  }
  if (!['expired', 'failed'].includes(first.state) || second.state !== 'succeeded')
    throw new Error(`attempts ended ${first.state} then ${second.state}`);
  if (first.resolvedAt === null || second.createdAt < first.resolvedAt)
    throw new Error('the second attempt was built before the first had ended');
  if (second.createdAt.getTime() <= Number(first.maxTime) * 1_000)
    throw new Error("the second attempt was built before the first's max time had passed");
}

async function attemptsOf(world: SandboxSettlement, payout: Payout): Promise<Attempt[]> {
  return world.sql<Attempt[]>`
    select a.id, a.hash, a.state, a.submissions, a.max_time as "maxTime", a.max_ledger as "maxLedger",
      a.created_at as "createdAt", a.resolved_at as "resolvedAt"
    from settlement_attempts a
    join settlement_attempt_payouts ap on ap.attempt_id = a.id
    where ap.payout_id = ${payout.id}::uuid
    order by a.created_at`;
}
