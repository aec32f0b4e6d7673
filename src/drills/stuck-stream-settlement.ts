import { join } from 'node:path';
import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { stellarDecimals } from '../stellar/units.ts';
import { accruedAt, periodAt } from '../streams/accrual.ts';
import { selectRun, selectStream } from '../streams/data.ts';
import { scheduleOf } from '../streams/service.ts';
import { settleBatch, startRun } from '../streams/settlement.ts';
import type { Drill, DrillContext } from './harness.ts';
import { testExpression } from './promtool.ts';
import { openFundedCustomers, runScheduledTask } from './sandbox-service.ts';
import {
  activeFaultKinds,
  checkMoneyIntact,
  newDestinations,
  type Payout,
  type SandboxSettlement,
  startSandboxSettlement,
  waitForState,
} from './sandbox-settlement.ts';
import {
  alertExpression,
  api,
  checkLedgerBalanced,
  cliOk,
  idempotencyKey,
  metricValue,
  openAccount,
  scrapeMetrics,
  xlmMinor,
} from './support.ts';

/**
 * The thresholds, short for the drill (production's are 15 minutes): a run still running this long
 * is abandoned and a `stream_run_stuck` finding; a stream due this long is a `stream_overdue` one.
 */
const stuckAfterSeconds = 10;
const payerLumens = '100';
/** Stellar streams start first, so the run's first batch (the one that "crashes") claims them. */
const streamPlans = [
  { to: 'address', total: '2.0000001', startAgoMs: 40 * 60_000 },
  { to: 'address', total: '2.0000002', startAgoMs: 40 * 60_000 },
  { to: 'account', total: '3.0000003', startAgoMs: 30 * 60_000 },
  { to: 'account', total: '3.0000004', startAgoMs: 30 * 60_000 },
] as const;
const streamDurationMs = 2 * 3_600_000;
/**
 * A stream is first due one interval after its start, so all four are due when made; once settled,
 * each is due again 10 minutes later, after the drill: each is settled exactly once in it.
 */
const intervalSeconds = 600;
const crashedBatch = 2;
const settleMsMax = 20_000;
const stuckWaitMsMax = (stuckAfterSeconds + 20) * 1_000;
const detectionMsMax = 20_000;
const detectorTask = 'reconcile_stuck_settlements';
/**
 * The service's own streams_settle job runs at each minute: the streams are made and the crashed
 * run claims them between these seconds past a minute and 10 more before the next one.
 */
const minuteEdgeSeconds = 4;
const scrapeIntervalSeconds = 15;

type Stream = { id: string; to: 'address' | 'account'; recipient: string; totalMinor: bigint };

/**
 * docs/runbooks/stuck-settlement.md (stream settlement runs) against `settledesk serve` and its
 * sandbox network. Streams pay two Stellar addresses and two accounts; ledgers freeze
 * (`practice-freeze-ledgers`); a settlement run settles its first batch (the two Stellar streams:
 * their payouts are submitted and stay off chain) and its process "crashes": the run stays
 * `running`. Past STREAM_RUN_STUCK_AFTER_SECONDS the service's stuck_settlements task abandons it
 * and opens `stream_run_stuck` (and `stream_overdue` for the streams left due);
 * StreamSettlementStuck's expression, evaluated by promtool on the scrapes, fires. The runbook's
 * cells find the run, see its payouts not on chain, re-run settlement (the rest is paid, nothing
 * twice); ledgers close again, the payouts settle, the finding is closed and nothing is stuck.
 * Every stream is paid exactly what accrued at its settlement, once, on the ledger and on chain.
 */
export const stuckStreamSettlementDrill: Drill = {
  name: 'stuck-stream-settlement',
  runbook: 'stuck-settlement.md',
  description:
    'a stream settlement run crashes midway while ledgers are frozen; detection and triage show it, ' +
    'the runbook re-runs it, and every stream is paid what accrued, once, on the ledger and on chain',
  run: async (context) => {
    const world = await startSandboxSettlement(context, {
      STREAM_RUN_STUCK_AFTER_SECONDS: String(stuckAfterSeconds),
      STREAM_SETTLEMENT_OVERDUE_AFTER_SECONDS: String(stuckAfterSeconds),
    });
    context.env.OLDER_THAN = `${stuckAfterSeconds}s`;
    const before = await context.step('before the fault: nothing is stuck', async () => {
      await runScheduledTask(world, detectorTask);
      const text = await scrapeMetrics(world.service);
      for (const kind of ['stream_run_stuck', 'stream_overdue'])
        if (metricValue(text, 'reconciliation_findings_open', { kind }) !== 0)
          throw context.fail(`reconciliation_findings_open{kind="${kind}"} is not 0 before the fault`);
      return text;
    });

    const { payer, streams } = await context.step(
      'a funded payer; streams to two Stellar addresses and two accounts',
      () => openStreams(context, world),
    );

    await context.step('inject: ledgers stop closing', async () => {
      await context.cells(['practice-freeze-ledgers'], { yes: true });
      await context.expectAfter('practice-freeze-ledgers', 'no freeze_ledgers fault is active', async () => {
        if (!(await activeFaultKinds(world)).includes('freeze_ledgers')) throw new Error('no fault');
      });
    });

    const runId = await context.step(
      `a settlement run settles its first batch of ${crashedBatch}, then its process dies`,
      () => crashMidway(context, world, streams),
    );

    const during = await detect(context, world, runId);
    await context.step("detection: StreamSettlementStuck's expression on the scrapes (promtool)", () =>
      expressionFires(context, before, during),
    );

    const payouts = await investigate(context, world, runId, streams);

    await context.step('runbook: re-run the settlement; the rest is paid, nothing twice', async () => {
      const [rerun] = await context.cells(['rerun-stream-settlement'], { yes: true });
      await context.expectAfter('rerun-stream-settlement', 'the re-run did not succeed', async () => {
        if (!/\bsucceeded\b/.test(rerun?.stdout ?? '')) throw new Error(rerun?.stdout ?? '');
      });
      const [due] = await world.sql<{ count: number }[]>`
        select count(*)::int as count from streams where state = 'active' and next_settlement_at <= now()`;
      if (due?.count !== 0) throw context.fail(`${due?.count} streams still due after the re-run`);
    });

    await context.step('the fix: ledgers close again; the run’s payouts settle', async () => {
      await context.cells(['practice-clear-faults'], { yes: true });
      await context.expectAfter('practice-clear-faults', 'the payouts did not settle', () =>
        waitForState(context, world, payouts, 'settled', settleMsMax),
      );
    });

    await context.step('runbook: the payouts are on chain; close the finding; nothing is stuck', async () => {
      const [checked] = await context.cells(['check-stream-run-payouts']);
      await context.expectAfter(
        'check-stream-run-payouts',
        'it should show every payout settled',
        async () => {
          for (const payout of payouts)
            if (!(checked?.stdout ?? '').includes(`payout ${payout.id} settled`))
              throw new Error(`no "payout ${payout.id} settled" in ${checked?.stdout}`);
        },
      );
      await context.cells(['close-stream-run-finding'], { yes: true });
      await runScheduledTask(world, detectorTask);
      await context.cells(['check-nothing-stuck']);
    });

    await context.step('the alert clears: no stream finding open on /metrics', async () => {
      const text = await scrapeMetrics(world.service);
      for (const kind of ['stream_run_stuck', 'stream_overdue']) {
        const open = metricValue(text, 'reconciliation_findings_open', { kind });
        if (open !== 0) throw context.fail(`reconciliation_findings_open{kind="${kind}"} is ${open}`);
      }
    });

    await context.step(
      'money: every stream paid exactly what accrued, once, on the ledger and on chain',
      () => checkStreamsPaidOnce(context, world, { payer, streams, payouts }),
    );
    await context.step('the ledger sums to zero', () => checkLedgerBalanced(context));
  },
};

async function openStreams(
  context: DrillContext,
  world: SandboxSettlement,
): Promise<{ payer: { id: string; fundedMinor: bigint }; streams: Stream[] }> {
  const fundedMinor = xlmMinor(payerLumens);
  const [payerId] = await openFundedCustomers(context, world, [fundedMinor]);
  if (payerId === undefined) throw context.fail('no payer account');
  const addresses = await newDestinations(world, 2);
  await awayFromMinuteEdge(context, world);
  const [row] = await world.sql<{ now: Date }[]>`select now() as now`;
  const now = row?.now.getTime() ?? Date.now();
  const streams: Stream[] = [];
  for (const [index, plan] of streamPlans.entries()) {
    const recipient =
      plan.to === 'address'
        ? (addresses[index] ?? '')
        : await openAccount(context, world.service, world.tokens.service, `stream-recipient-${index}`);
    const start = now - plan.startAgoMs;
    const created = await api<{ id: string }>(
      world.service,
      world.tokens.service,
      'POST',
      '/v1/streams',
      {
        payerAccountId: payerId,
        ...(plan.to === 'address' ? { recipientAddress: recipient } : { recipientAccountId: recipient }),
        asset: 'XLM',
        totalAmount: plan.total,
        startAt: new Date(start).toISOString(),
        endAt: new Date(start + streamDurationMs).toISOString(),
        settlement: { intervalSeconds },
      },
      { 'idempotency-key': idempotencyKey(context) },
    );
    if (created.status !== 201)
      throw context.fail(`POST /v1/streams answered ${created.status}: ${JSON.stringify(created.body)}`);
    streams.push({ id: created.body.id, to: plan.to, recipient, totalMinor: xlmMinor(plan.total) });
  }
  context.note(`streams ${streams.map((stream) => `${stream.id} → ${stream.recipient}`).join(', ')}`);
  return { payer: { id: payerId, fundedMinor }, streams };
}

/**
 * The service's own streams_settle job runs at the start of each minute and would settle the
 * streams before the drill's run claims them: wait out the few seconds around it.
 */
async function awayFromMinuteEdge(context: DrillContext, world: SandboxSettlement): Promise<void> {
  await context.waitFor(
    'the clock away from a minute boundary',
    async () => {
      const [row] = await world.sql<{ second: number }[]>`
        select extract(second from now())::float8 as second`;
      const second = row?.second ?? 0;
      return second >= minuteEdgeSeconds && second < 60 - minuteEdgeSeconds - 6 ? true : undefined;
    },
    30_000,
  );
}

/** `startRun` and one committed batch, then nothing: the run stays `running`, as after a crash. */
async function crashMidway(
  context: DrillContext,
  world: SandboxSettlement,
  streams: Stream[],
): Promise<string> {
  const asOf = new Date();
  const runId = await startRun(world.sql, asOf);
  const batch = await withTransaction(world.sql, (tx) =>
    settleBatch(tx, { runId, asOf, limit: crashedBatch, skip: [] }),
  );
  const settled = await world.sql<{ streamId: string; payoutId: string | null }[]>`
    select stream_id as "streamId", payout_id as "payoutId" from stream_settlements where run_id = ${runId}::uuid`;
  const addressStreams = streams.filter((stream) => stream.to === 'address').map((stream) => stream.id);
  if (
    batch.claimed !== crashedBatch ||
    settled.length !== crashedBatch ||
    settled.some((row) => !addressStreams.includes(row.streamId) || row.payoutId === null)
  )
    throw context.fail(`the first batch settled ${JSON.stringify(settled)}, not the two Stellar streams`);
  const payouts = settled.map((row) => ({ id: row.payoutId ?? '' }) as Payout);
  await waitForState(context, world, payouts, 'submitted', settleMsMax);
  context.note(`run ${runId}: ${settled.length} streams settled, payouts submitted, ledgers frozen`);
  return runId;
}

async function detect(context: DrillContext, world: SandboxSettlement, runId: string): Promise<string> {
  return context.step(
    `detection: past ${stuckAfterSeconds}s the run is abandoned and a stream_run_stuck finding is open on /metrics`,
    async () => {
      if (
        alertExpression('StreamSettlementStuck') !==
        'max by (kind) (reconciliation_findings_open{kind=~"stream_run_stuck|stream_overdue"}) > 0'
      )
        throw context.fail('the StreamSettlementStuck alert no longer watches the stream findings');
      await context.waitFor(
        `run ${runId} to be ${stuckAfterSeconds}s old`,
        async () => {
          const [row] = await world.sql<{ old: boolean }[]>`
            select now() - started_at > make_interval(secs => ${stuckAfterSeconds}::int) as old
            from stream_settlement_runs where id = ${runId}::uuid`;
          return row?.old ? true : undefined;
        },
        stuckWaitMsMax,
      );
      // The worker runs stuck_settlements every minute; the drill runs that job now.
      const text = await context.waitFor(
        'reconciliation_findings_open{kind="stream_run_stuck"} above 0',
        async () => {
          await runScheduledTask(world, detectorTask);
          const scraped = await scrapeMetrics(world.service);
          return metricValue(scraped, 'reconciliation_findings_open', { kind: 'stream_run_stuck' }) > 0
            ? scraped
            : undefined;
        },
        detectionMsMax,
      );
      const run = await selectRun(world.sql, runId);
      if (run?.outcome !== 'abandoned') throw context.fail(`run ${runId} is ${run?.outcome}, not abandoned`);
      const abandoned = metricValue(text, 'stream_settlement_runs_total', { result: 'abandoned' });
      if (abandoned < 1) throw context.fail('stream_settlement_runs_total{result="abandoned"} is 0');
      const summary = JSON.parse(await cliOk(context, context.env, ['--json', 'triage', 'summary'])) as {
        attention: string[];
      };
      if (!summary.attention.includes('finding: 1 open stream_run_stuck'))
        throw context.fail(`the triage summary does not name the finding: ${summary.attention.join('; ')}`);
      return text;
    },
  );
}

/**
 * A promtool unit test of StreamSettlementStuck's expression from ops/prometheus/alerts.yml on the
 * open-findings gauge as the service exported it before the fault and once the detector ran:
 * quiet before, true for `stream_run_stuck` after.
 */
async function expressionFires(context: DrillContext, before: string, during: string): Promise<void> {
  const kinds = ['stream_run_stuck', 'stream_overdue'];
  const series = kinds.map((kind) => ({
    selector: `reconciliation_findings_open{kind="${kind}",instance="settledesk",job="settledesk"}`,
    values: [before, during, during]
      .map((text) => String(metricValue(text, 'reconciliation_findings_open', { kind })))
      .join(' '),
  }));
  const firing = kinds
    .filter((kind) => metricValue(during, 'reconciliation_findings_open', { kind }) > 0)
    .map((kind) => `{kind="${kind}"}`);
  const file = join(context.dir, 'stream-settlement-stuck.test.yml');
  const result = await testExpression({
    file,
    intervalSeconds: scrapeIntervalSeconds,
    series,
    expr: `count by (kind) (${alertExpression('StreamSettlementStuck')})`,
    checks: [
      { atSeconds: 0, firing: [] },
      { atSeconds: scrapeIntervalSeconds, firing },
    ],
  });
  if (result.code !== 0) throw context.fail(`promtool test rules ${file}: ${result.output}`);
  context.figure(
    'findingKindsFiring',
    firing.length,
    `StreamSettlementStuck's expression fires for ${firing.join(', ')}`,
  );
}

async function investigate(
  context: DrillContext,
  world: SandboxSettlement,
  runId: string,
  streams: Stream[],
): Promise<Payout[]> {
  return context.step('runbook: find the stuck run; its payouts have not reached the chain', async () => {
    const [found, checked] = await context.cells(['find-stuck-stream-run', 'check-stream-run-payouts']);
    await context.expectAfter(
      'find-stuck-stream-run',
      'it should pick the abandoned run and its finding',
      async () => {
        const picked = /stuck run (\S+), finding (\S+)/.exec(found?.stdout ?? '');
        if (picked?.[1] !== runId || picked[2] === 'none')
          throw new Error(`it picks ${picked?.[1]} / ${picked?.[2]}, not run ${runId} with its finding`);
        if (!/abandoned/.test(found?.stdout ?? '')) throw new Error('it does not show the run abandoned');
        Object.assign(context.env, { RUN_ID: runId, FINDING_ID: picked[2] });
      },
    );
    const payouts = await world.sql<{ id: string; destination: string; amountMinor: bigint }[]>`
      select p.id, p.destination, p.amount_minor as "amountMinor"
      from stream_settlements s join payouts p on p.id = s.payout_id where s.run_id = ${runId}::uuid`;
    await context.expectAfter(
      'check-stream-run-payouts',
      'it should show the payouts submitted, not on chain',
      async () => {
        for (const payout of payouts)
          if (!(checked?.stdout ?? '').includes(`payout ${payout.id} submitted`))
            throw new Error(`no "payout ${payout.id} submitted" in ${checked?.stdout}`);
      },
    );
    const addresses = streams.filter((stream) => stream.to === 'address').map((stream) => stream.recipient);
    return payouts.map((payout) => {
      if (!addresses.includes(payout.destination))
        throw context.fail(`payout ${payout.id} to ${payout.destination}`);
      const amount = formatAmount(payout.amountMinor, stellarDecimals);
      return {
        id: payout.id,
        source: '',
        destination: payout.destination,
        amount,
        amountMinor: payout.amountMinor,
      };
    });
  });
}

/**
 * Each stream settled exactly once in the drill (one settlement row, period as its `asOf` says),
 * with exactly what had accrued at that `asOf` under its schedule, and `settled` equal to it; an
 * account recipient holds it, a Stellar recipient's payout settled by one attempt and was paid
 * once on chain (checkMoneyIntact: nothing else left the hot wallet, clearing is empty, nothing
 * refunded). The payer holds what it was funded less the totals; escrow holds what is unsettled.
 */
async function checkStreamsPaidOnce(
  context: DrillContext,
  world: SandboxSettlement,
  input: { payer: { id: string; fundedMinor: bigint }; streams: Stream[]; payouts: Payout[] },
): Promise<void> {
  let unsettled = 0n;
  for (const stream of input.streams) {
    const row = await selectStream(world.sql, stream.id);
    if (!row) throw context.fail(`stream ${stream.id} is missing`);
    const settlements = await world.sql<
      { periodIndex: number; amountMinor: bigint; asOf: Date; payoutId: string | null }[]
    >`
      select period_index as "periodIndex", amount_minor as "amountMinor", as_of as "asOf", payout_id as "payoutId"
      from stream_settlements where stream_id = ${stream.id}::uuid`;
    const [only] = settlements;
    if (settlements.length !== 1 || only === undefined)
      throw context.fail(`stream ${stream.id} has ${settlements.length} settlements, not 1`);
    const schedule = scheduleOf(row);
    const atMs = BigInt(only.asOf.getTime());
    const accrued = accruedAt(schedule, atMs);
    if (only.amountMinor !== accrued || row.settledMinor !== accrued || accrued <= 0n)
      throw context.fail(
        `stream ${stream.id}: paid ${only.amountMinor}, settled ${row.settledMinor}, accrued ${accrued} at ${only.asOf.toISOString()}`,
      );
    if (BigInt(only.periodIndex) !== periodAt(schedule, atMs))
      throw context.fail(`stream ${stream.id}: period ${only.periodIndex} at ${only.asOf.toISOString()}`);
    if (stream.to === 'account') {
      const [account] = await world.sql<{ balance: bigint }[]>`
        select balance_minor as balance from accounts where id = ${stream.recipient}::uuid`;
      if (account?.balance !== accrued)
        throw context.fail(`recipient ${stream.recipient} holds ${account?.balance}, not ${accrued}`);
    } else if (!input.payouts.some((payout) => payout.id === only.payoutId && payout.amountMinor === accrued))
      throw context.fail(`stream ${stream.id}: its payout ${only.payoutId} is not the one of its run`);
    unsettled += stream.totalMinor - accrued;
  }
  const { paymentsOnChain } = await checkMoneyIntact(world, input.payouts, []);
  const [payer] = await world.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where id = ${input.payer.id}::uuid`;
  const totals = input.streams.reduce((sum, stream) => sum + stream.totalMinor, 0n);
  if (payer?.balance !== input.payer.fundedMinor - totals)
    throw context.fail(`the payer holds ${payer?.balance}, not ${input.payer.fundedMinor - totals}`);
  const [escrow] = await world.sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where type = 'escrow' and asset = 'XLM'`;
  if (escrow?.balance !== unsettled) throw context.fail(`escrow holds ${escrow?.balance}, not ${unsettled}`);
  context.figure(
    'streamsPaidOnce',
    input.streams.length,
    `${input.streams.length} streams each paid what accrued once; ${paymentsOnChain} payments on chain`,
  );
}
