import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../platform/db/embedded.ts';
import { loopStaleSecondsMinDefault } from '../platform/loops.ts';
import { reconcileTaskOf } from '../reconciliation/tasks.ts';
import type { DrillContext } from './harness.ts';
import { type Drill, sleep } from './harness.ts';
import { testExpression } from './promtool.ts';
import { runScheduledTask } from './sandbox-service.ts';
import {
  checkMoneyIntact,
  expectWaiting,
  openPayoutFlow,
  type SandboxSettlement,
  startSandboxSettlement,
  waitForState,
} from './sandbox-settlement.ts';
import { alertExpression, metricValue, triageSummary } from './support.ts';

/**
 * The loops only the worker process runs, whose staleness the drill checks: the settlement engine
 * and the deposit watcher (cron loops go stale only after minutes).
 */
const workerLoops = ['payout', 'deposit_watcher'] as const;
/** The floor of stale-after in the processes and triage (LOOP_STALE_SECONDS_MIN), for a fast drill. */
const staleSecondsMinDrill = 4;
const reportIntervalMsDrill = 1_000;
const detectionMsMax = 20_000;
const settleMsMax = 30_000;
/** A stopped worker's readiness is given this long to answer before it counts as not answering. */
const readyProbeMs = 2_000;
const stopWaitMs = 10_000;
/** Scrapes of the live worker fed to promtool, one Prometheus scrape interval apart. */
const scrapesBeforeFault = 3;
const scrapeIntervalSeconds = 15;

type Scrape = { atSeconds: number; text: string };
type Worker = { pid: number; url: string };

/**
 * docs/runbooks/worker-stalled.md against `settledesk serve` without its worker
 * (SETTLEDESK_WORKER=false) and a separate `settledesk worker`, started by the runbook's own
 * cells. After payouts settle, the worker is stopped (SIGSTOP), then resumed and killed (SIGKILL).
 * Each time: WorkerLoopStale's expression, evaluated by promtool on series made of the worker's
 * real scrapes followed by none (as Prometheus sees a stopped target), is false within the
 * stale-after time and true after it; the worker's readiness does not answer (a timeout, then a
 * refused connection); and `settledesk triage summary` names the stale loops. Payouts made while
 * the worker is dead wait; the runbook's cells start a worker again; then they settle, a detector
 * runs, money is intact, and triage has no stale loop.
 */
export const workerDeadDrill: Drill = {
  name: 'worker-dead',
  runbook: 'worker-stalled.md',
  description:
    'the only worker process is stopped, then killed; the staleness alert, readiness and triage ' +
    "see it, the runbook's cells start a worker again, and payouts made meanwhile settle",
  run: async (context) => {
    const workerPort = await freePort();
    const world = await startSandboxSettlement(context, {
      SETTLEDESK_WORKER: 'false',
      LOOP_STALE_SECONDS_MIN: String(staleSecondsMinDrill),
      LOOP_REPORT_INTERVAL_MS: String(reportIntervalMsDrill),
    });
    const workerUrl = `http://127.0.0.1:${workerPort}`;
    Object.assign(context.env, {
      WORKER_METRICS_PORT: String(workerPort),
      WORKER_URL: workerUrl,
      WORKER_LOG: join(context.dir, 'worker.log'),
    });
    const first = await context.step('start a worker (runbook cells start-worker, wait-worker-ready)', () =>
      startWorker(context, workerUrl),
    );
    const flow = await openPayoutFlow(context, world, { customers: 1, lumens: '100', destinations: 2 });
    const before = await context.step('work flows: the worker settles two payouts', async () => {
      const paid = await flow.pay(2);
      await waitForState(context, world, paid, 'settled', settleMsMax);
      return scrapeWorker(context, first);
    });

    await context.step('fault: SIGSTOP the worker', async () => {
      process.kill(first.pid, 'SIGSTOP');
    });
    await detect(context, first, before, 'stopped', 'staleDetectedAfterStopMs');

    const resumed = await context.step('SIGCONT: the worker resumes and is ready again', async () => {
      process.kill(first.pid, 'SIGCONT');
      await context.waitFor('the worker to be ready', () => ready(first), detectionMsMax);
      return scrapeWorker(context, first);
    });
    await context.step('fault: SIGKILL the worker (the process is gone)', async () => {
      process.kill(first.pid, 'SIGKILL');
    });
    await detect(context, first, resumed, 'gone', 'staleDetectedAfterKillMs');

    const whileDead = await context.step('payouts accepted while no worker runs wait', async () => {
      const paid = await flow.pay(2);
      await sleep(1_000);
      await expectWaiting(world, paid);
      return paid;
    });
    context.figure(
      'payoutsWhileDead',
      whileDead.length,
      `${whileDead.length} payouts made while the worker was dead`,
    );
    await context.step('runbook: loops-state reports the stale loops', () =>
      context.cellReports('loops-state', 'a loop is stale'),
    );
    await context.step('mitigation: the runbook starts a worker again', () =>
      startWorker(context, workerUrl),
    );
    await recover(context, world, flow);
  },
};

/** Runs the runbook's start cells; the worker is stopped when the drill ends. */
async function startWorker(context: DrillContext, url: string): Promise<Worker> {
  const [started] = await context.cells(['start-worker', 'wait-worker-ready'], { yes: true });
  const pid = Number(/pid (\d+)/.exec(started?.stdout ?? '')?.[1]);
  if (!Number.isInteger(pid) || pid <= 0)
    throw context.fail(`start-worker printed no pid: ${started?.stdout}`);
  context.defer(`stop settledesk worker (pid ${pid})`, () => stopProcess(pid));
  context.note(`settledesk worker pid ${pid} ready at ${url}`);
  return { pid, url };
}

/** SIGCONT (it may be stopped), SIGTERM, and SIGKILL if it is still there after `stopWaitMs`. */
async function stopProcess(pid: number): Promise<void> {
  for (const signal of ['SIGCONT', 'SIGTERM'] as const) signalPid(pid, signal);
  const deadline = performance.now() + stopWaitMs;
  while (alive(pid) && performance.now() < deadline) await sleep(100);
  if (alive(pid)) signalPid(pid, 'SIGKILL');
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already.
  }
}

/** Running or stopped; a zombie (killed, not yet reaped by its new parent) is not alive. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The worker's /metrics, `scrapesBeforeFault` times, with when each was taken. */
async function scrapeWorker(context: DrillContext, worker: Worker): Promise<Scrape[]> {
  const scrapes: Scrape[] = [];
  for (let index = 0; index < scrapesBeforeFault; index += 1) {
    const response = await fetch(`${worker.url}/metrics`, { signal: AbortSignal.timeout(readyProbeMs) });
    if (!response.ok) throw context.fail(`the worker's /metrics answered ${response.status}`);
    scrapes.push({ atSeconds: Date.now() / 1_000, text: await response.text() });
    await sleep(200);
  }
  return scrapes;
}

/** The three detections after a stop or a kill. */
async function detect(
  context: DrillContext,
  worker: Worker,
  scrapes: readonly Scrape[],
  state: 'stopped' | 'gone',
  figure: string,
): Promise<void> {
  const faultAt = performance.now();
  await context.step(
    `detection: WorkerLoopStale's expression (promtool, the worker's real scrapes then none) is true after the stale-after time, not before`,
    () => expressionFires(context, scrapes),
  );
  await context.step(`detection: the ${state} worker's /health/ready does not answer 200`, () =>
    expectNotReady(context, worker, state),
  );
  await context.step('detection: triage summary names the stale loops', async () => {
    // Gone, the process also stops reporting: triage names it too.
    const detail = await context.waitFor(
      state === 'gone'
        ? 'triage to name the stale loops and the silent worker'
        : 'triage to name the stale loops',
      () => staleLoops(context, state === 'gone'),
      detectionMsMax,
    );
    context.figure(figure, Math.round(performance.now() - faultAt), `triage loops: ${detail}`);
  });
}

async function staleLoops(context: DrillContext, silent: boolean): Promise<string | undefined> {
  const summary = await triageSummary(context, context.env);
  const part = summary.parts.loops;
  const named = workerLoops.every((worker) => part.detail.includes(`${worker} last succeeded`));
  const silentNamed = !silent || part.detail.includes('processes that stopped reporting: worker@');
  return part.status === 'stale' && named && silentNamed ? part.detail : undefined;
}

async function ready(worker: Worker): Promise<true | undefined> {
  const response = await fetch(`${worker.url}/health/ready`, { signal: AbortSignal.timeout(readyProbeMs) });
  await response.body?.cancel();
  return response.status === 200 ? true : undefined;
}

async function expectNotReady(
  context: DrillContext,
  worker: Worker,
  state: 'stopped' | 'gone',
): Promise<void> {
  let answer: string;
  try {
    const response = await fetch(`${worker.url}/health/ready`, { signal: AbortSignal.timeout(readyProbeMs) });
    answer = `status ${response.status}`;
    await response.body?.cancel();
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    answer = (error as Error).name === 'TimeoutError' ? 'timeout' : (cause ?? String(error));
  }
  const expected = state === 'stopped' ? 'timeout' : 'ECONNREFUSED';
  if (answer !== expected)
    throw context.fail(`the ${state} worker's /health/ready: ${answer}, not ${expected}`);
  context.note(`/health/ready of the ${state} worker: ${answer}`);
}

/**
 * A promtool unit test of WorkerLoopStale's expression from ops/prometheus/alerts.yml: each
 * scrape becomes one sample `scrapeIntervalSeconds` apart (its last-success value moved onto
 * promtool's clock by the same offset as its scrape time), then no samples. It must be false one
 * scrape interval before the latest loop's stale-after time and true one interval after it.
 */
async function expressionFires(context: DrillContext, scrapes: readonly Scrape[]): Promise<void> {
  const lastAt = scrapeIntervalSeconds * (scrapes.length - 1);
  const series: { selector: string; values: string }[] = [];
  let quietAt = Number.POSITIVE_INFINITY;
  let firingAt = 0;
  for (const worker of workerLoops) {
    const successes = scrapes.map((scrape, index) => {
      const value = metricValue(scrape.text, 'worker_last_success_timestamp_seconds', { worker });
      return {
        synthetic: index * scrapeIntervalSeconds - (scrape.atSeconds - value),
        age: scrape.atSeconds - value,
      };
    });
    const interval = metricValue(scrapes[0]?.text ?? '', 'worker_interval_seconds', { worker });
    const staleAfter = Math.max(3 * interval, loopStaleSecondsMinDefault);
    const age = successes.at(-1)?.age ?? 0;
    quietAt = Math.min(quietAt, lastAt + staleAfter - age - scrapeIntervalSeconds);
    firingAt = Math.max(firingAt, lastAt + staleAfter - age + scrapeIntervalSeconds);
    const labels = `{instance="settledesk-worker",job="settledesk",worker="${worker}"}`;
    series.push(
      {
        selector: `worker_last_success_timestamp_seconds${labels}`,
        values: successes.map((success) => success.synthetic.toFixed(3)).join(' '),
      },
      { selector: `worker_interval_seconds${labels}`, values: scrapes.map(() => String(interval)).join(' ') },
    );
  }
  const expr = `count by (worker) (${alertExpression('WorkerLoopStale')})`;
  const file = join(context.dir, `worker-loop-stale-${Date.now()}.test.yml`);
  const result = await testExpression({
    file,
    intervalSeconds: scrapeIntervalSeconds,
    series,
    expr,
    checks: [
      { atSeconds: Math.floor(quietAt), firing: [] },
      {
        atSeconds: Math.ceil(firingAt),
        firing: [...workerLoops].sort().map((worker) => `{worker="${worker}"}`),
      },
    ],
  });
  if (result.code !== 0) throw context.fail(`promtool test rules ${file}: ${result.output}`);
  context.note(
    `WorkerLoopStale's expression: quiet at ${Math.floor(quietAt - lastAt)} s after the last scrape, true for ${workerLoops.join(', ')} at ${Math.ceil(firingAt - lastAt)} s`,
  );
}

/** After the restart: payouts settle, a detector runs, money is intact, no loop is stale. */
async function recover(
  context: DrillContext,
  world: SandboxSettlement,
  flow: Awaited<ReturnType<typeof openPayoutFlow>>,
): Promise<void> {
  await context.step('recovery: every payout settles, those made while the worker was dead too', () =>
    context.expectAfter('start-worker', 'payouts did not settle after the restart', () =>
      waitForState(context, world, flow.payouts, 'settled', settleMsMax),
    ),
  );
  await context.step('recovery: a reconciliation detector runs in the new worker', () =>
    context.expectAfter('start-worker', 'no detector ran after the restart', () =>
      runScheduledTask(world, reconcileTaskOf('ledger_balance')),
    ),
  );
  await context.step(
    'recovery: money is intact (every payout paid once on chain, nothing refunded)',
    async () => {
      const { paymentsOnChain } = await checkMoneyIntact(world, flow.payouts, flow.customers);
      context.figure('paymentsOnChain', paymentsOnChain, `${paymentsOnChain} payments on chain`);
    },
  );
  // The new worker reported its loops when it started, before it was ready.
  await context.step('recovery: no loop is stale (runbook cell loops-state exits 0)', () =>
    context.cells(['loops-state']),
  );
}
