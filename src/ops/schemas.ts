import { Type } from 'typebox';
import { PayoutDetailSchema } from '../payouts/routes.ts';
import { type SummaryStatus, summaryStatuses } from './triage.ts';

/** Response schemas of the triage routes: everything the library returns, nothing more. */

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const FindingSchema = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  subject: Type.String(),
  evidence: Type.Unknown(),
  firstSeenAt: Type.String({ format: 'date-time' }),
  lastSeenAt: Type.String({ format: 'date-time' }),
  occurrences: Type.Integer(),
});

export const PathStatusSchema = Type.Object({
  path: Type.String(),
  kind: Type.Union([Type.Literal('horizon'), Type.Literal('rpc')]),
  url: Type.String(),
  reachable: Type.Boolean(),
  latencyMs: Type.Integer(),
  latestLedger: Nullable(Type.Integer()),
  latestLedgerAgeSeconds: Nullable(Type.Integer()),
  ingestionLagLedgers: Nullable(Type.Integer()),
  fees: Nullable(
    Type.Object({
      baseFeeStroops: Type.String(),
      p90FeeStroops: Type.String(),
      capacityUsage: Type.String(),
    }),
  ),
  breaker: Type.String(),
  error: Nullable(Type.String()),
});

export const StellarStatusSchema = Type.Object({
  network: Type.String(),
  checkedAt: Type.String({ format: 'date-time' }),
  paths: Type.Array(PathStatusSchema),
  anyPathUp: Type.Boolean(),
});

export const DependenciesSchema = Type.Object({
  ready: Type.Boolean(),
  checkedAt: Type.String({ format: 'date-time' }),
  checks: Type.Record(
    Type.String(),
    Type.Object({
      name: Type.String(),
      critical: Type.Boolean(),
      status: Type.String(),
      latencyMs: Type.Integer(),
      detail: Type.Optional(Type.String()),
    }),
  ),
});

const SummaryStatusSchema = Type.Unsafe<SummaryStatus>({ type: 'string', enum: [...summaryStatuses] });
const SummaryPartSchema = Type.Object({ status: SummaryStatusSchema, detail: Type.String() });

export const SummarySchema = Type.Object({
  generatedAt: Type.String({ format: 'date-time' }),
  /** The worst of `parts`, in the order of `summaryStatuses`. */
  status: SummaryStatusSchema,
  attention: Type.Array(Type.String()),
  parts: Type.Object({
    workers: SummaryPartSchema,
    loops: SummaryPartSchema,
    stellar: SummaryPartSchema,
    dependencies: SummaryPartSchema,
    money: SummaryPartSchema,
  }),
  controls: Type.Object({
    paymentsMode: Type.String(),
    payoutsFrozen: Type.Boolean(),
    updatedBy: Type.String(),
    reason: Type.String(),
  }),
  ledger: Type.Object({
    imbalances: Type.Array(Type.Object({ asset: Type.String(), sum: Type.String() })),
    openFindings: Type.Integer(),
  }),
  payouts: Type.Object({
    open: Type.Array(
      Type.Object({ state: Type.String(), count: Type.Integer(), oldestAgeSeconds: Type.Integer() }),
    ),
    stuck: Type.Object({ olderThanSeconds: Type.Integer(), count: Type.Integer() }),
    manualReview: Type.Integer(),
  }),
  streams: Type.Object({
    olderThanSeconds: Type.Integer(),
    runsRunning: Type.Integer(),
    overdue: Type.Integer(),
  }),
  findings: Type.Array(Type.Object({ kind: Type.String(), count: Type.Integer() })),
  deposits: Type.Object({
    webhookDeadLetters: Type.Integer(),
    watcher: Type.Object({
      cursor: Type.String(),
      lastLedger: Nullable(Type.Integer()),
      lastLedgerAgeSeconds: Nullable(Type.Integer()),
    }),
  }),
  approvalsPending: Type.Integer(),
  stellar: Nullable(StellarStatusSchema),
  dependencies: Nullable(DependenciesSchema),
});

export const StuckSchema = Type.Object({
  olderThanSeconds: Type.Integer(),
  count: Type.Integer(),
  payouts: Type.Array(
    Type.Object({
      id: Type.String(),
      state: Type.String(),
      stateReason: Type.String(),
      asset: Type.String(),
      amount: Type.String(),
      destination: Type.String(),
      ageSeconds: Type.Integer(),
      sinceLastChangeSeconds: Type.Integer(),
      attempts: Type.Integer(),
      liveHash: Nullable(Type.String()),
    }),
  ),
  streams: Type.Object({
    runs: Type.Array(
      Type.Object({
        id: Type.String(),
        outcome: Type.String(),
        asOf: Type.String(),
        startedAt: Type.String(),
        runningSeconds: Type.Integer(),
        streamsSettled: Type.Integer(),
        amountsMinor: Type.Record(Type.String(), Type.String()),
        payouts: Type.Integer(),
        payoutsNotFinal: Type.Integer(),
      }),
    ),
    overdueCount: Type.Integer(),
    overdue: Type.Array(
      Type.Object({
        id: Type.String(),
        asset: Type.String(),
        recipient: Type.String(),
        nextSettlementAt: Type.String(),
        overdueSeconds: Type.Integer(),
        settled: Type.String(),
        total: Type.String(),
      }),
    ),
  }),
});

export const LedgerSchema = Type.Object({
  balanced: Type.Boolean(),
  balanceSums: Type.Array(
    Type.Object({ asset: Type.String(), sum: Type.String(), balanced: Type.Boolean() }),
  ),
  findings: Type.Array(FindingSchema),
});

export const EscrowSchema = Type.Object({
  leaking: Type.Boolean(),
  accounts: Type.Array(
    Type.Object({
      asset: Type.String(),
      balance: Type.String(),
      openHolds: Type.String(),
      difference: Type.String(),
      holds: Type.Array(
        Type.Object({
          id: Type.String(),
          state: Type.String(),
          remaining: Type.String(),
          createdAt: Type.String({ format: 'date-time' }),
        }),
        { description: 'open holds of a leaking asset, largest remainder first (bounded)' },
      ),
    }),
  ),
  findings: Type.Array(FindingSchema),
});

export const TimelineSchema = Type.Object({
  payout: PayoutDetailSchema,
  journals: Type.Array(
    Type.Object({
      journalId: Type.String(),
      kind: Type.String(),
      createdAt: Type.String({ format: 'date-time' }),
    }),
  ),
  onChain: Type.Array(
    Type.Object({
      hash: Type.String(),
      path: Nullable(Type.String()),
      status: Type.String(),
      ledger: Nullable(Type.Integer()),
      unanswered: Type.Array(Type.Object({ path: Type.String(), error: Type.String() })),
    }),
  ),
  audit: Type.Array(
    Type.Object({
      id: Type.String(),
      occurredAt: Type.String({ format: 'date-time' }),
      actor: Type.String(),
      action: Type.String(),
      sealed: Type.Boolean(),
      after: Type.Unknown(),
    }),
  ),
  findings: Type.Array(FindingSchema),
});

export const LoopsSchema = Type.Object({
  loops: Type.Array(
    Type.Object({
      worker: Type.String(),
      processes: Type.Array(Type.String()),
      processCount: Type.Integer(),
      lastSuccessAgeSeconds: Type.Integer(),
      intervalSeconds: Type.Number(),
      staleAfterSeconds: Type.Number(),
      stale: Type.Boolean(),
    }),
  ),
  silentProcesses: Type.Array(Type.Object({ processId: Type.String(), silentSeconds: Type.Integer() })),
});
