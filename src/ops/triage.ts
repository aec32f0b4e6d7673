import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { readControls } from '../controls/service.ts';
import { countDeadLetters } from '../deposits/data.ts';
import { webhookDeadLetters } from '../deposits/metrics.ts';
import { selectWatcher } from '../deposits/watcher-data.ts';
import { selectOpenHoldSums, selectOpenHoldsOf } from '../escrow/data.ts';
import {
  appendTimeline,
  getIncident,
  lockIncident,
  type SnapshotView,
  snapshotHeadView,
} from '../incidents/service.ts';
import { selectAssets } from '../ledger/data.ts';
import { formatAmount } from '../money/money.ts';
import { getPayoutDetail, type PayoutDetail } from '../payouts/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import type { HealthRegistry } from '../platform/health.ts';
import { type WorkersStatus, workersStatus } from '../platform/heartbeat.ts';
import { isUuid } from '../platform/ids.ts';
import { selectLoops, selectSilentProcesses } from '../platform/loop-report.ts';
import { countOpenFindingsByKind, selectOpenFindings } from '../reconciliation/data.ts';
import { refreshFromDatabase as refreshFindingGauges } from '../reconciliation/metrics.ts';
import type { StellarEndpoints } from '../stellar/endpoints.ts';
import type { PathReport } from '../stellar/settlement-chain.ts';
import {
  countOverdueStreams,
  countStuckRuns,
  selectOverdueStreams,
  selectRunsNeedingAttention,
} from '../streams/data.ts';
import {
  countPendingProposals,
  countStuckPayouts,
  insertSnapshot,
  selectAuditForSubject,
  selectBalanceSums,
  selectJournalsForPayout,
  selectOpenPayoutCounts,
  selectSnapshot,
  selectStuckPayouts,
  selectSystemBalances,
} from './data.ts';
import { lookupOnChain, type OnChainLookup } from './lookup.ts';
import { probeStellar, type StellarStatus } from './stellar-status.ts';

/**
 * The on-call library: every triage question, answered read-only from the database (and from
 * Stellar, where the question is about Stellar). The `/internal/incident/` routes and the
 * `settledesk triage` commands are thin shells over it, so the CLI answers the same thing with
 * the API down. Only `snapshot` writes, and what it writes is the evidence itself.
 */

export const stuckOlderThanSecondsDefault = 30 * 60;
export const stuckOlderThanSecondsMax = 30 * 86_400;
export const triageListMax = 200;
/** Holds listed beside one leaking asset's difference: enough to read, bounded for a big book. */
export const escrowHoldsListedMax = 50;
export const timelineAuditMax = 200;
export const timelineLookupsMax = 20;
/** A cached Stellar and dependency status older than this is refreshed (in the background). */
export const statusMaxAgeMs = 30_000;
/** A status older than this says nothing about now (the probe has stopped or hangs): `unknown`. */
export const stellarStatusAgeMsMax = 2 * statusMaxAgeMs;

/**
 * What the summary and each of its parts can be, best first; the summary is the worst of its
 * parts, never better. `unknown`: not read, or read too long ago (it may be fine, nobody can
 * say). `degraded`: works with less margin (one Stellar path of several down, a readiness check
 * degraded). `attention`: money needs a person (an imbalance, a finding, a stuck payout, frozen
 * payouts, dead letters). `stale`: stopped reporting (workers past three missed heartbeats).
 * `down`: not running or not answering.
 */
export const summaryStatuses = ['ok', 'unknown', 'degraded', 'attention', 'stale', 'down'] as const;
export type SummaryStatus = (typeof summaryStatuses)[number];
export type SummaryPart = { status: SummaryStatus; detail: string };

export function worstStatus(statuses: readonly SummaryStatus[]): SummaryStatus {
  const rank = (status: SummaryStatus) => summaryStatuses.indexOf(status);
  return statuses.reduce<SummaryStatus>(
    (worst, status) => (rank(status) > rank(worst) ? status : worst),
    'ok',
  );
}

const findingKindsDoublePayout = ['double_payout', 'unknown_outgoing_payment'];
const findingKindsLedger = ['ledger_imbalance', 'account_balance_mismatch'];

export type FindingView = {
  id: string;
  kind: string;
  subject: string;
  evidence: unknown;
  firstSeenAt: string;
  lastSeenAt: string;
  occurrences: number;
};

export type DependencyReport = Awaited<ReturnType<HealthRegistry['run']>> & { checkedAt: string };

export type Summary = {
  generatedAt: string;
  status: SummaryStatus;
  /** One line per part or item that is not ok. */
  attention: string[];
  parts: {
    workers: SummaryPart;
    loops: SummaryPart;
    stellar: SummaryPart;
    dependencies: SummaryPart;
    money: SummaryPart;
  };
  controls: { paymentsMode: string; payoutsFrozen: boolean; updatedBy: string; reason: string };
  ledger: { imbalances: { asset: string; sum: string }[]; openFindings: number };
  payouts: {
    open: { state: string; count: number; oldestAgeSeconds: number }[];
    stuck: { olderThanSeconds: number; count: number };
    manualReview: number;
  };
  /** Stream settlement runs still running, and active streams due and not settled, past `olderThanSeconds`. */
  streams: { olderThanSeconds: number; runsRunning: number; overdue: number };
  findings: { kind: string; count: number }[];
  deposits: {
    webhookDeadLetters: number;
    watcher: { cursor: string; lastLedger: number | null; lastLedgerAgeSeconds: number | null };
  };
  approvalsPending: number;
  stellar: StellarStatus | null;
  dependencies: DependencyReport | null;
};

/**
 * Every loop any process reported into `worker_loops`, judged as WorkerLoopStale judges it: stale
 * when the newest success across processes is older than its stale-after time (3 intervals, with
 * the reporting process's floor). `silentProcesses` stopped reporting (3 reports missed): killed,
 * stopped or cut off from the database; a graceful stop leaves its rows too, so that a loop only
 * it ran stays visible as stale. Rows go a day after their process fell silent.
 */
export type LoopsReport = {
  loops: {
    worker: string;
    processes: string[];
    processCount: number;
    lastSuccessAgeSeconds: number;
    intervalSeconds: number;
    staleAfterSeconds: number;
    stale: boolean;
  }[];
  silentProcesses: { processId: string; silentSeconds: number }[];
};

export type StuckReport = {
  olderThanSeconds: number;
  count: number;
  payouts: {
    id: string;
    state: string;
    stateReason: string;
    asset: string;
    amount: string;
    destination: string;
    ageSeconds: number;
    sinceLastChangeSeconds: number;
    attempts: number;
    liveHash: string | null;
  }[];
  /** Stream settlement (docs/streams.md#stuck-settlement), with the same `olderThanSeconds`. */
  streams: {
    /** Runs still running past it, and runs abandoned whose `stream_run_stuck` finding is open; oldest first. */
    runs: {
      id: string;
      outcome: string;
      asOf: string;
      startedAt: string;
      runningSeconds: number;
      streamsSettled: number;
      amountsMinor: Record<string, string>;
      payouts: number;
      payoutsNotFinal: number;
    }[];
    overdueCount: number;
    /** Active streams due and not settled past it, longest overdue first. */
    overdue: {
      id: string;
      asset: string;
      recipient: string;
      nextSettlementAt: string;
      overdueSeconds: number;
      settled: string;
      total: string;
    }[];
  };
};

export type LedgerReport = {
  balanced: boolean;
  balanceSums: { asset: string; sum: string; balanced: boolean }[];
  findings: FindingView[];
};

export type EscrowReport = {
  leaking: boolean;
  accounts: {
    asset: string;
    balance: string;
    openHolds: string;
    difference: string;
    /** The open holds of a leaking asset, largest remainder first (at most `escrowHoldsListedMax`). */
    holds: { id: string; state: string; remaining: string; createdAt: string }[];
  }[];
  findings: FindingView[];
};

export type Timeline = {
  payout: PayoutDetail;
  journals: { journalId: string; kind: string; createdAt: string }[];
  onChain: OnChainLookup[];
  audit: { id: string; occurredAt: string; actor: string; action: string; sealed: boolean; after: unknown }[];
  findings: FindingView[];
};

export type TriageDeps = {
  sql: Sql;
  /** Where Stellar is; undefined when this process cannot know (e.g. no sandbox is running). */
  stellar: StellarEndpoints | undefined;
  /** The settlement engine's breakers, in the process that runs it. */
  breakers?: () => readonly PathReport[] | undefined;
  health?: HealthRegistry;
  /** Judges the age of the cached status; tests move it forward. */
  clock?: () => number;
};

type StatusCache = { stellar: StellarStatus | null; dependencies: DependencyReport | null; at: number };

const secondsSince = (at: Date, now: number) => Math.max(0, Math.round((now - at.getTime()) / 1_000));

function workersPart(workers: WorkersStatus): SummaryPart {
  return { status: workers.status, detail: workers.detail };
}

/** Silent processes the summary's `loops` line names; `triage loops` lists them all. */
export const silentProcessesNamedMax = 5;

function loopsPart(report: LoopsReport): SummaryPart {
  if (report.loops.length === 0)
    return { status: 'unknown', detail: 'no process has reported its loops into worker_loops' };
  // Most recently silent first; every restart leaves one for a day, so the line is bounded.
  const silent = report.silentProcesses
    .slice(0, silentProcessesNamedMax)
    .map((process) => `${process.processId} silent for ${process.silentSeconds} s`);
  const more = report.silentProcesses.length - silent.length;
  if (more > 0) silent.push(`${more} more (settledesk triage loops)`);
  const silentText = silent.length === 0 ? '' : `; processes that stopped reporting: ${silent.join(', ')}`;
  const stale = report.loops.filter((loop) => loop.stale);
  if (stale.length === 0)
    return { status: 'ok', detail: `${report.loops.length} loops succeeded in time${silentText}` };
  const named = stale.map(
    (loop) =>
      `${loop.worker} last succeeded ${loop.lastSuccessAgeSeconds} s ago (interval ${loop.intervalSeconds} s, stale after ${loop.staleAfterSeconds} s)`,
  );
  return { status: 'stale', detail: `${named.join('; ')}${silentText}` };
}

function tooOld(checkedAt: string, now: number): SummaryPart | undefined {
  const ageMs = now - Date.parse(checkedAt);
  if (ageMs <= stellarStatusAgeMsMax) return undefined;
  return { status: 'unknown', detail: `last read ${Math.round(ageMs / 1_000)} s ago` };
}

function stellarPart(status: StellarStatus | null, now: number): SummaryPart {
  if (status === null) return { status: 'unknown', detail: 'not read: no Stellar network known here' };
  const old = tooOld(status.checkedAt, now);
  if (old) return old;
  if (!status.anyPathUp) return { status: 'down', detail: 'no path answers' };
  const silent = status.paths.filter((path) => !path.reachable).map((path) => path.path);
  if (silent.length > 0) return { status: 'degraded', detail: `${silent.join(', ')} not answering` };
  return { status: 'ok', detail: `${status.paths.length} paths answer` };
}

function dependenciesPart(report: DependencyReport | null, now: number): SummaryPart {
  if (report === null) return { status: 'unknown', detail: 'not read: no readiness checks here' };
  const old = tooOld(report.checkedAt, now);
  if (old) return old;
  const failing = Object.values(report.checks).filter((check) => check.status !== 'ok');
  const named = failing.map((check) => `${check.name} ${check.status}`).join(', ');
  if (!report.ready) return { status: 'down', detail: `not ready: ${named}` };
  if (failing.length > 0) return { status: 'degraded', detail: named };
  return { status: 'ok', detail: 'every check ok' };
}

export class Triage {
  readonly #deps: TriageDeps;
  #status: StatusCache | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(deps: TriageDeps) {
    this.#deps = deps;
  }

  /**
   * Probes Stellar and every readiness check once (this also sets their gauges), and refreshes the
   * gauges counted from the database.
   */
  async refreshStatus(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const [stellar, dependencies, deadLetters] = await Promise.all([
          this.#probeStellar(),
          this.#runHealth(),
          countDeadLetters(this.#deps.sql).catch(() => undefined),
          // Every serving process reports the findings, not only the one whose worker found them.
          refreshFindingGauges(this.#deps.sql).catch(() => undefined),
        ]);
        // Set here too, not only when a webhook is dead-lettered, so a restarted process reports it.
        if (deadLetters !== undefined) webhookDeadLetters.set(deadLetters);
        this.#status = { stellar, dependencies, at: Date.now() };
      } finally {
        this.#refreshing = undefined;
      }
    })();
    await this.#refreshing;
  }

  /** The last status; a stale one is returned at once while a refresh runs behind it. */
  async #cachedStatus(): Promise<StatusCache> {
    if (this.#status === undefined) await this.refreshStatus().catch(() => {});
    else if (Date.now() - this.#status.at > statusMaxAgeMs) void this.refreshStatus().catch(() => {});
    return this.#status ?? { stellar: null, dependencies: null, at: Date.now() };
  }

  async #probeStellar(): Promise<StellarStatus | null> {
    const { stellar, breakers } = this.#deps;
    return stellar ? probeStellar(stellar, breakers?.()) : null;
  }

  async #runHealth(): Promise<DependencyReport | null> {
    const health = this.#deps.health;
    if (!health) return null;
    return { ...(await health.run()), checkedAt: new Date().toISOString() };
  }

  async summary(): Promise<Summary> {
    const { sql } = this.#deps;
    const now = Date.now();
    const [
      controls,
      precisions,
      sums,
      open,
      stuck,
      findings,
      deadLetters,
      watcher,
      pending,
      workers,
      loops,
      status,
      runsRunning,
      overdueStreams,
    ] = await Promise.all([
      readControls(sql),
      this.#precisions(),
      selectBalanceSums(sql),
      selectOpenPayoutCounts(sql),
      countStuckPayouts(sql, stuckOlderThanSecondsDefault),
      countOpenFindingsByKind(sql),
      countDeadLetters(sql),
      selectWatcher(sql),
      countPendingProposals(sql),
      workersStatus(sql),
      this.loops(),
      this.#cachedStatus(),
      countStuckRuns(sql, stuckOlderThanSecondsDefault),
      countOverdueStreams(sql, stuckOlderThanSecondsDefault),
    ]);
    const imbalances = sums
      .filter((row) => row.sumMinor !== 0n)
      .map((row) => ({ asset: row.asset, sum: formatAmount(row.sumMinor, precisions.get(row.asset) ?? 7) }));
    const manualReview = open.find((row) => row.state === 'manual_review')?.count ?? 0;
    const ledgerFindings = findings
      .filter((row) => findingKindsLedger.includes(row.kind))
      .reduce((total, row) => total + row.count, 0);
    const money = [
      ...imbalances.map((row) => `ledger: ${row.asset} balances sum to ${row.sum}, not 0`),
      ...findings.map((row) => `finding: ${row.count} open ${row.kind}`),
      ...(stuck > 0 ? [`payouts: ${stuck} not final after ${stuckOlderThanSecondsDefault / 60} min`] : []),
      ...(manualReview > 0 ? [`payouts: ${manualReview} in manual review`] : []),
      ...(runsRunning > 0
        ? [
            `streams: ${runsRunning} settlement runs still running after ${stuckOlderThanSecondsDefault / 60} min`,
          ]
        : []),
      ...(overdueStreams > 0
        ? [`streams: ${overdueStreams} due and not settled after ${stuckOlderThanSecondsDefault / 60} min`]
        : []),
      ...(deadLetters > 0 ? [`deposits: ${deadLetters} provider webhooks in the dead-letter queue`] : []),
      ...(controls.payoutsFrozen ? ['controls: payouts are frozen'] : []),
      ...(controls.paymentsMode !== 'standard'
        ? [`controls: payments mode is ${controls.paymentsMode}`]
        : []),
    ];
    const judgedAt = this.#deps.clock?.() ?? now;
    const parts: Summary['parts'] = {
      workers: workersPart(workers),
      loops: loopsPart(loops),
      stellar: stellarPart(status.stellar, judgedAt),
      dependencies: dependenciesPart(status.dependencies, judgedAt),
      money:
        money.length === 0
          ? { status: 'ok', detail: 'nothing needs a person' }
          : { status: 'attention', detail: `${money.length} items need a person` },
    };
    const attention = [
      ...Object.entries(parts)
        .filter(([name, part]) => name !== 'money' && part.status !== 'ok')
        .map(([name, part]) => `${name}: ${part.status} (${part.detail})`),
      ...money,
    ];
    return {
      generatedAt: new Date(now).toISOString(),
      status: worstStatus(Object.values(parts).map((part) => part.status)),
      attention,
      parts,
      controls: {
        paymentsMode: controls.paymentsMode,
        payoutsFrozen: controls.payoutsFrozen,
        updatedBy: controls.updatedBy,
        reason: controls.reason,
      },
      ledger: { imbalances, openFindings: ledgerFindings },
      payouts: {
        open: open.map((row) => ({
          state: row.state,
          count: row.count,
          oldestAgeSeconds: secondsSince(row.oldestCreatedAt, now),
        })),
        stuck: { olderThanSeconds: stuckOlderThanSecondsDefault, count: stuck },
        manualReview,
      },
      streams: { olderThanSeconds: stuckOlderThanSecondsDefault, runsRunning, overdue: overdueStreams },
      findings,
      deposits: {
        webhookDeadLetters: deadLetters,
        watcher: {
          cursor: watcher.cursor.toString(),
          lastLedger: watcher.seenLedger,
          lastLedgerAgeSeconds: watcher.seenLedgerClosedAt
            ? secondsSince(watcher.seenLedgerClosedAt, now)
            : null,
        },
      },
      approvalsPending: pending,
      stellar: status.stellar,
      dependencies: status.dependencies,
    };
  }

  async loops(): Promise<LoopsReport> {
    const [loops, silent] = await Promise.all([
      selectLoops(this.#deps.sql, triageListMax),
      selectSilentProcesses(this.#deps.sql, triageListMax),
    ]);
    return {
      loops: loops.map((row) => ({
        worker: row.worker,
        processes: row.processes,
        processCount: row.processCount,
        lastSuccessAgeSeconds: Math.round(row.ageSeconds),
        intervalSeconds: row.intervalSeconds,
        staleAfterSeconds: row.staleAfterSeconds,
        stale: row.ageSeconds > row.staleAfterSeconds,
      })),
      silentProcesses: silent.map((row) => ({
        processId: row.processId,
        silentSeconds: Math.round(row.silentSeconds),
      })),
    };
  }

  async stuckSettlements(olderThanSeconds: number, limit = triageListMax): Promise<StuckReport> {
    const { sql } = this.#deps;
    const now = Date.now();
    const listed = Math.min(limit, triageListMax);
    const [rows, count, precisions, runs, overdue, overdueCount] = await Promise.all([
      selectStuckPayouts(sql, olderThanSeconds, listed),
      countStuckPayouts(sql, olderThanSeconds),
      this.#precisions(),
      selectRunsNeedingAttention(sql, olderThanSeconds, listed),
      selectOverdueStreams(sql, olderThanSeconds, listed),
      countOverdueStreams(sql, olderThanSeconds),
    ]);
    return {
      olderThanSeconds,
      count,
      streams: {
        runs: runs.map((run) => ({
          id: run.id,
          outcome: run.outcome,
          asOf: run.asOf.toISOString(),
          startedAt: run.startedAt.toISOString(),
          runningSeconds: Math.round(run.runningSeconds),
          streamsSettled: run.streamsSettled,
          amountsMinor: run.amounts,
          payouts: run.payouts,
          payoutsNotFinal: run.payoutsOpen,
        })),
        overdueCount,
        overdue: overdue.map((stream) => ({
          id: stream.id,
          asset: stream.asset,
          recipient: stream.recipientAccountId ?? stream.recipientAddress ?? '',
          nextSettlementAt: stream.nextSettlementAt.toISOString(),
          overdueSeconds: Math.round(stream.overdueSeconds),
          settled: formatAmount(stream.settledMinor, stream.precision),
          total: formatAmount(stream.totalMinor, stream.precision),
        })),
      },
      payouts: rows.map((row) => ({
        id: row.id,
        state: row.state,
        stateReason: row.stateReason,
        asset: row.asset,
        amount: formatAmount(row.amountMinor, precisions.get(row.asset) ?? 7),
        destination: row.destination,
        ageSeconds: secondsSince(row.createdAt, now),
        sinceLastChangeSeconds: secondsSince(row.updatedAt, now),
        attempts: row.attempts,
        liveHash: row.liveHash,
      })),
    };
  }

  async doublePayouts(limit = triageListMax): Promise<{ findings: FindingView[] }> {
    return { findings: await this.#findings(findingKindsDoublePayout, limit) };
  }

  async ledgerImbalance(): Promise<LedgerReport> {
    const [sums, precisions, findings] = await Promise.all([
      selectBalanceSums(this.#deps.sql),
      this.#precisions(),
      this.#findings(findingKindsLedger, triageListMax),
    ]);
    const balanceSums = sums.map((row) => ({
      asset: row.asset,
      sum: formatAmount(row.sumMinor, precisions.get(row.asset) ?? 7),
      balanced: row.sumMinor === 0n,
    }));
    return {
      balanced: balanceSums.every((row) => row.balanced) && findings.length === 0,
      balanceSums,
      findings,
    };
  }

  /**
   * The escrow account must hold exactly what remains of open holds (src/escrow), per asset; open
   * `escrow_leak` and `stuck_release` findings (a release paid on to an address not settled in time).
   */
  async escrowLeaks(): Promise<EscrowReport> {
    const [[accounts, holds, involved], precisions, findings] = await Promise.all([
      // Balances, hold sums and the holds listed from one snapshot, as the escrow detector reads them.
      withTransaction(
        this.#deps.sql,
        async (tx) => {
          const balances = await selectSystemBalances(tx, 'escrow');
          const sums = await selectOpenHoldSums(tx);
          const leaking = balances.filter((row) => row.balanceMinor !== (sums.get(row.asset) ?? 0n));
          const listed = await selectOpenHoldsOf(
            tx,
            leaking.map((row) => row.asset),
            escrowHoldsListedMax,
          );
          return [balances, sums, listed] as const;
        },
        { isolation: 'repeatable read' },
      ),
      this.#precisions(),
      this.#findings(['escrow_leak', 'stuck_release'], triageListMax),
    ]);
    const rows = accounts.map((account) => {
      const precision = precisions.get(account.asset) ?? 7;
      const openHoldsMinor = holds.get(account.asset) ?? 0n;
      return {
        asset: account.asset,
        balance: formatAmount(account.balanceMinor, precision),
        openHolds: formatAmount(openHoldsMinor, precision),
        difference: formatAmount(account.balanceMinor - openHoldsMinor, precision),
        holds: involved
          .filter((hold) => hold.asset === account.asset)
          .map((hold) => ({
            id: hold.id,
            state: hold.state,
            remaining: formatAmount(hold.remainingMinor, precision),
            createdAt: hold.createdAt.toISOString(),
          })),
        leaking: account.balanceMinor !== openHoldsMinor,
      };
    });
    return {
      leaking: rows.some((row) => row.leaking) || findings.some((finding) => finding.kind === 'escrow_leak'),
      accounts: rows.map(({ leaking: _, ...row }) => row),
      findings,
    };
  }

  /** A live probe of every Stellar path (not the cached one): the question is "right now". */
  async stellar(): Promise<StellarStatus | null> {
    return this.#probeStellar();
  }

  async dependencies(): Promise<DependencyReport | null> {
    return this.#runHealth();
  }

  async payoutTimeline(payoutId: string): Promise<Timeline> {
    const { sql, stellar } = this.#deps;
    const payout = await getPayoutDetail(sql, payoutId);
    const [journals, audit, findings] = await Promise.all([
      selectJournalsForPayout(sql, payoutId),
      selectAuditForSubject(sql, 'payout', payoutId, timelineAuditMax),
      this.#findingsAbout(payoutId),
    ]);
    const hashes = payout.attempts.slice(0, timelineLookupsMax).map((attempt) => attempt.hash);
    const onChain = stellar ? await Promise.all(hashes.map((hash) => lookupOnChain(stellar, hash))) : [];
    return {
      payout,
      journals: journals.map((row) => ({ ...row, createdAt: row.createdAt.toISOString() })),
      onChain,
      audit: audit.map((row) => ({
        id: row.id.toString(),
        occurredAt: row.occurredAt.toISOString(),
        actor: row.actor,
        action: row.action,
        sealed: row.sealed,
        after: row.after,
      })),
      findings,
    };
  }

  /**
   * Stores everything above as one snapshot, with an audit entry; it moves no money. `incident` is
   * an incident record's id (the snapshot is attached to it, with a `snapshot_attached` timeline
   * event in the same transaction; an unknown id is `incidents/not-found` and nothing is stored),
   * or any other reference as free text, as before incident records existed.
   */
  async snapshot(
    takenBy: string,
    incident: string | null,
    requestId?: string,
  ): Promise<{ id: string; takenAt: string; incidentId: string | null }> {
    const incidentId = isUuid(incident) ? incident : null;
    // Refused before the expensive reads: an unknown incident id is a typo, not evidence.
    if (incidentId !== null) await getIncident(this.#deps.sql, incidentId);
    const [summary, stuck, doublePayouts, escrow, ledger, stellar, dependencies, loops] = await Promise.all([
      this.summary(),
      this.stuckSettlements(stuckOlderThanSecondsDefault),
      this.doublePayouts(),
      this.escrowLeaks(),
      this.ledgerImbalance(),
      this.stellar(),
      this.dependencies(),
      this.loops(),
    ]);
    const content = { summary, stuck, doublePayouts, escrow, ledger, stellar, dependencies, loops };
    const id = randomUUID();
    const takenAt = await withTransaction(this.#deps.sql, async (tx) => {
      if (incidentId !== null) await lockIncident(tx, incidentId);
      const at = await insertSnapshot(tx, { id, incidentRef: incident, incidentId, takenBy, content });
      await appendAudit(tx, {
        actor: takenBy,
        action: 'incident.snapshot',
        subjectType: 'incident_snapshot',
        subjectId: id,
        after: { incidentRef: incident },
        requestId,
      });
      if (incidentId !== null) {
        await appendTimeline(
          tx,
          incidentId,
          {
            kind: 'snapshot_attached',
            source: 'person',
            summary: `triage snapshot ${id}: ${summary.status}`,
            detail: { snapshotId: id, status: summary.status, attention: summary.attention.length },
          },
          { name: takenBy, requestId },
        );
      }
      return at;
    });
    return { id, takenAt: takenAt.toISOString(), incidentId };
  }

  /** One stored snapshot as it was taken; `incidents/snapshot-not-found` when there is none. */
  async readSnapshot(id: string): Promise<SnapshotView> {
    const row = await selectSnapshot(this.#deps.sql, id);
    if (!row) throw new DomainError('incidents/snapshot-not-found', `no snapshot ${id}`);
    return { ...snapshotHeadView(row), content: row.content };
  }

  async #precisions(): Promise<Map<string, number>> {
    const assets = await selectAssets(this.#deps.sql);
    return new Map(assets.map((asset) => [asset.code, asset.precision]));
  }

  async #findings(kinds: readonly string[], limit: number): Promise<FindingView[]> {
    const lists = await Promise.all(
      kinds.map((kind) =>
        selectOpenFindings(this.#deps.sql, { kind, limit: Math.min(limit, triageListMax) }),
      ),
    );
    return lists.flat().map(findingView);
  }

  async #findingsAbout(subject: string): Promise<FindingView[]> {
    const rows = await selectOpenFindings(this.#deps.sql, { subject, limit: triageListMax });
    return rows.map(findingView);
  }
}

type FindingRow = Awaited<ReturnType<typeof selectOpenFindings>>[number];

function findingView(row: FindingRow): FindingView {
  return {
    id: String(row.id),
    kind: row.kind,
    subject: row.subject,
    evidence: row.evidence,
    firstSeenAt: row.firstSeenAt.toISOString(),
    lastSeenAt: row.lastSeenAt.toISOString(),
    occurrences: row.occurrences,
  };
}
