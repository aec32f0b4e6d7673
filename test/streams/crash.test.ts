import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectOpenHoldSums } from '../../src/escrow/data.ts';
import { selectImbalances } from '../../src/ledger/data.ts';
import { formatAmount } from '../../src/money/money.ts';
import { unscreenedDestination } from '../../src/payouts/destinations.ts';
import { withTransaction } from '../../src/platform/db/transaction.ts';
import { fund } from '../../src/sandbox/test-support.ts';
import { accruedAt, periodAt, type SettlementSchedule } from '../../src/streams/accrual.ts';
import { createStream } from '../../src/streams/service.ts';
import { unit } from '../../src/streams/test-support.ts';
import { fundFromFees } from '../support/ledger.ts';
import { type PayoutHarness, startPayoutHarness } from '../support/payouts.ts';
import { finished, spawnCli, waitFor } from '../support/process.ts';
import { seededRandom } from '../support/random.ts';
import { testEnv } from '../support/service.ts';

/**
 * Acceptance 2 of issue 18: `settledesk streams settle --as-of T`, in a process of its own, is
 * killed with SIGKILL at seeded random moments of its run, then re-run, at several instants in
 * turn, for streams paying settledesk accounts and Stellar addresses on the sandbox network. Each
 * stream is then paid exactly once per period: on the ledger (its settlements, the recipients'
 * entries and balances) and on the chain (the payments each address received), the ledger sums
 * to zero and escrow equals the open holds.
 */

const accountStreamsCount = 240;
const addressStreamsCount = 30;
const payersCount = 6;
const instantsCount = 5;
const killsPerInstant = 4;
const killAttemptsMax = 3 * killsPerInstant;
const minuteMs = 60_000;
const intervalSeconds = 60;
/**
 * Streams start 50 minutes ago and settle at start + 10 min, + 20 min… (all past instants: the
 * command refuses one ahead of the clock); the short ones end a little after funding, and the last
 * instant, once the clock has passed it, completes them.
 */
const startedAgoMs = 50 * minuteMs;
const instantStepMs = 10 * minuteMs;
const shortEndAheadMs = 40_000;
const lastInstantSpreadMs = 5_000;
const longEndAheadMs = 3 * 60 * minuteMs;
/** The kills' spread before a run has been timed on this machine. */
const firstKillDelayMs = 1_000;
const runStartMsMax = 30_000;
const runStartPollMs = 10;
const chainSettleTimeoutMs = 60_000;

let harness: PayoutHarness;

beforeAll(async () => {
  harness = await startPayoutHarness();
});

afterAll(async () => {
  await harness.close();
});

type Funded = {
  id: string;
  schedule: SettlementSchedule;
  recipientAccountId: string | null;
  recipientAddress: string | null;
};

async function dbNow(harness: PayoutHarness): Promise<number> {
  const [row] = await harness.service.db.sql<{ now: Date }[]>`select now() as now`;
  return row?.now.getTime() ?? 0;
}

async function newAccount(harness: PayoutHarness, fundedMinor: bigint): Promise<string> {
  const [row] = await harness.service.db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  const id = row?.id ?? '';
  if (fundedMinor > 0n) await fundFromFees(harness.service.db.sql, id, fundedMinor);
  return id;
}

/** Due streams left at `asOf`: a run that skipped one a killed run's backend still held leaves it. */
async function dueCount(asOf: Date): Promise<number> {
  const [row] = await harness.service.db.sql<{ count: number }[]>`
    select count(*)::int as count from streams
    where state = 'active' and next_settlement_at <= ${asOf}::timestamptz`;
  return row?.count ?? -1;
}

async function runsAt(asOf: Date) {
  return harness.service.db.sql<{ outcome: string; streamsSettled: number; ms: number | null }[]>`
    select outcome, streams_settled as "streamsSettled",
           (extract(epoch from finished_at - started_at) * 1000)::int as ms
    from stream_settlement_runs where as_of = ${asOf}::timestamptz order by started_at`;
}

describe('a settlement run under SIGKILL', () => {
  it('pays each stream exactly once per period, on the ledger and on the sandbox chain', async () => {
    const sql = harness.service.db.sql;
    const env = await testEnv(harness.service.db, { LOG_LEVEL: 'warn' });
    const addresses: string[] = [];
    for (let index = 0; index < addressStreamsCount; index += 1)
      addresses.push((await fund(harness.network, Keypair.random())).publicKey());
    const payers: string[] = [];
    for (let index = 0; index < payersCount; index += 1)
      payers.push(await newAccount(harness, 1_000n * unit));

    // Distinct totals, so no two streams accrue alike; every fifth ends before the last instant.
    const fundedAt = await dbNow(harness);
    const start = fundedAt - startedAgoMs;
    const shortEnd = fundedAt + shortEndAheadMs;
    const streams: Funded[] = [];
    // The short streams first, so every one is funded well before its end.
    const order = Array.from({ length: accountStreamsCount + addressStreamsCount }, (_, index) => index).sort(
      (a, b) => Number(a % 5 !== 0) - Number(b % 5 !== 0),
    );
    for (const index of order) {
      const totalMinor = 10n * unit + BigInt(index) * 10_000n;
      const toAddress = index >= accountStreamsCount ? addresses[index - accountStreamsCount] : undefined;
      const recipient = toAddress ? null : await newAccount(harness, 0n);
      const end = index % 5 === 0 ? shortEnd : fundedAt + longEndAheadMs;
      const stream = await withTransaction(sql, (tx) =>
        createStream(
          tx,
          {
            payerAccountId: payers[index % payersCount] ?? '',
            ...(toAddress ? { recipientAddress: toAddress } : { recipientAccountId: recipient ?? '' }),
            asset: 'XLM',
            totalAmount: formatAmount(totalMinor, 7),
            startAt: new Date(start).toISOString(),
            endAt: new Date(end).toISOString(),
            settlement: { intervalSeconds },
          },
          { name: 'crash-test', requestId: undefined },
          unscreenedDestination,
        ),
      );
      streams.push({
        id: stream.id,
        schedule: {
          totalMinor,
          startMs: BigInt(start),
          cliffMs: null,
          endMs: BigInt(end),
          intervalMs: BigInt(intervalSeconds * 1_000),
        },
        recipientAccountId: recipient,
        recipientAddress: toAddress ?? null,
      });
    }

    // Instants inside their periods (not on the grid), killed four times each at a seeded moment of
    // its run (up to a whole run's duration, as measured, after the run's row appears), then re-run until
    // nothing is due at that instant.
    const next = seededRandom(20_261_206);
    const instants: Date[] = [];
    let runMs = firstKillDelayMs;
    let killedMidRun = 0;
    for (let step = 1; step <= instantsCount; step += 1) {
      const asOf = new Date(
        step < instantsCount
          ? start + step * instantStepMs + Math.floor(next() * intervalSeconds * 1_000)
          : shortEnd + Math.floor(next() * lastInstantSpreadMs),
      );
      instants.push(asOf);
      await waitFor(
        async () => ((await dbNow(harness)) >= asOf.getTime() ? true : undefined),
        shortEndAheadMs + lastInstantSpreadMs + minuteMs,
        `the database's clock to pass ${asOf.toISOString()}`,
      );
      // Kills until `killsPerInstant` have landed on a live process, while anything is still due.
      let landed = 0;
      for (let attempt = 0; landed < killsPerInstant && attempt < killAttemptsMax; attempt += 1) {
        if ((await dueCount(asOf)) === 0) break;
        const runsBefore = (await runsAt(asOf)).length;
        const child = spawnCli(['streams', 'settle', '--as-of', asOf.toISOString()], env);
        const ending = finished(child, 60_000);
        // Polled often: on a fast machine a whole run takes a few hundred milliseconds.
        const startDeadline = Date.now() + runStartMsMax;
        while ((await runsAt(asOf)).length === runsBefore) {
          if (Date.now() > startDeadline) throw new Error(`no run as of ${asOf.toISOString()} started`);
          await new Promise((resolve) => setTimeout(resolve, runStartPollMs));
        }
        await new Promise((resolve) => setTimeout(resolve, Math.floor(next() * runMs)));
        child.kill('SIGKILL');
        const ended = await ending;
        // Killed, or its run had already finished.
        expect(ended.signal === 'SIGKILL' || ended.code === 0, ended.stderr).toBe(true);
        if (ended.signal === 'SIGKILL') landed += 1;
      }
      // A killed run's backend may still hold its batch's rows for a moment: those streams are
      // skipped (skip locked) and stay due, so the instant is re-run until none is.
      do {
        const rerun = await finished(
          spawnCli(['--json', 'streams', 'settle', '--as-of', asOf.toISOString()], env),
        );
        expect(rerun.code, rerun.stderr).toBe(0);
      } while ((await dueCount(asOf)) > 0);
      const runs = await runsAt(asOf);
      killedMidRun += runs.filter((run) => run.outcome === 'running' && run.streamsSettled > 0).length;
      if (process.env.SETTLEDESK_TEST_LOG === 'debug')
        process.stderr.write(`runs as of ${asOf.toISOString()}: ${JSON.stringify(runs)}\n`);
      expect(runs.at(-1)?.outcome).toBe('succeeded');
      // The next kills spread over what a whole run takes here, from the runs that finished.
      const timed = runs.filter((run) => run.outcome === 'succeeded' && run.streamsSettled > 0 && run.ms);
      const perStreamMs =
        timed.reduce((sum, run) => sum + (run.ms ?? 0), 0) /
        Math.max(
          1,
          timed.reduce((sum, run) => sum + run.streamsSettled, 0),
        );
      if (timed.length > 0) runMs = perStreamMs * streams.length;
    }
    // The kills did land inside runs that had committed part of their work.
    expect(killedMidRun).toBeGreaterThan(0);

    // The ledger: each stream settled once per instant's period, for exactly what accrued since.
    const settlements = await sql<
      { streamId: string; period: number; amount: bigint; journalId: string; payoutId: string | null }[]
    >`
      select stream_id as "streamId", period_index as period, amount_minor as amount,
             journal_id as "journalId", payout_id as "payoutId"
      from stream_settlements order by stream_id, period_index`;
    const byStream = Map.groupBy(settlements, (row) => row.streamId);
    for (const stream of streams) {
      const expected: { period: number; amount: bigint }[] = [];
      let before = 0n;
      for (const asOf of instants) {
        const at = BigInt(asOf.getTime());
        const accrued = accruedAt(stream.schedule, at);
        if (accrued > before)
          expected.push({ period: Number(periodAt(stream.schedule, at)), amount: accrued - before });
        before = accrued;
      }
      const paid = (byStream.get(stream.id) ?? []).map((row) => ({ period: row.period, amount: row.amount }));
      expect(paid, `stream ${stream.id}`).toEqual(expected);
    }
    const [journals] = await sql<{ count: number }[]>`
      select count(distinct journal_id)::int as count from stream_settlements`;
    expect(journals?.count).toBe(settlements.length);
    const settledOf = (id: string) => (byStream.get(id) ?? []).reduce((sum, row) => sum + row.amount, 0n);
    const shortStreams = streams.filter((stream) => stream.schedule.endMs === BigInt(shortEnd));
    for (const stream of shortStreams) expect(settledOf(stream.id)).toBe(stream.schedule.totalMinor);
    const stored = await sql<{ id: string; settled: bigint; state: string }[]>`
      select id, settled_minor as settled, state from streams`;
    for (const row of stored) {
      expect(row.settled).toBe(settledOf(row.id));
      const short = shortStreams.some((stream) => stream.id === row.id);
      expect(row.state).toBe(short ? 'completed' : 'active');
    }
    for (const stream of streams.filter((each) => each.recipientAccountId !== null)) {
      const [entries] = await sql<{ count: number; balance: bigint; sum: bigint }[]>`
        select count(e.account_id)::int as count, a.balance_minor as balance, coalesce(sum(e.amount_minor), 0)::int8 as sum
        from accounts a left join entries e on e.account_id = a.id
        where a.id = ${stream.recipientAccountId}::uuid group by a.balance_minor`;
      expect(entries).toEqual({
        count: byStream.get(stream.id)?.length,
        balance: settledOf(stream.id),
        sum: settledOf(stream.id),
      });
    }

    // The chain: every payout of a Stellar recipient settles, and each address received one
    // payment per settlement, for its amount, from the hot wallet.
    const payoutIds = settlements.flatMap((row) => (row.payoutId ? [row.payoutId] : []));
    expect(payoutIds).toHaveLength(
      streams.filter((stream) => stream.recipientAddress !== null).length * instants.length,
    );
    await harness.settleUntil(async () => {
      const states = Object.values(await harness.states(payoutIds));
      return states.length === payoutIds.length && states.every((state) => state === 'settled');
    }, chainSettleTimeoutMs);
    const [payouts] = await sql<{ count: number }[]>`select count(*)::int as count from payouts`;
    expect(payouts?.count).toBe(payoutIds.length);
    const hotWallet = harness.wallet.hotWallet.publicKey();
    for (const stream of streams) {
      if (stream.recipientAddress === null) continue;
      const received = harness.network.sandbox.network
        .accountPayments(stream.recipientAddress)
        .flatMap((payment) =>
          payment.transactionSuccessful && payment.body.type === 'payment' && payment.body.from === hotWallet
            ? [payment.body.amountStroops]
            : [],
        )
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const settled = (byStream.get(stream.id) ?? [])
        .map((row) => row.amount)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      expect(received, `payments to ${stream.recipientAddress}`).toEqual(settled);
    }

    expect(await selectImbalances(sql)).toEqual([]);
    expect(await harness.balance('escrow')).toBe((await selectOpenHoldSums(sql)).get('XLM') ?? 0n);
    expect(await harness.balance('payout_clearing')).toBe(0n);
  }, 180_000);
});
