import { Type } from 'typebox';
import { SnapshotHeadSchema } from '../incidents/schemas.ts';
import { operatorRoles } from '../platform/auth/roles.ts';
import { parseDurationSeconds } from '../platform/duration.ts';
import { DomainError } from '../platform/errors.ts';
import type { App } from '../platform/http/app.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { Uuid } from '../platform/ids.ts';
import {
  DependenciesSchema,
  EscrowSchema,
  FindingSchema,
  LedgerSchema,
  LoopsSchema,
  StellarStatusSchema,
  StuckSchema,
  SummarySchema,
  TimelineSchema,
} from './schemas.ts';
import {
  stuckOlderThanSecondsDefault,
  stuckOlderThanSecondsMax,
  type Triage,
  triageListMax,
} from './triage.ts';

/**
 * Read-only triage under /internal/incident/ for operators (viewers are refused: these answers
 * name payouts, amounts and addresses). Each route calls one library function; only the snapshot
 * writes, and what it writes is the evidence (and, for an incident record, its timeline event).
 */

const config = { access: operatorRoles };
const tags = ['incident'];
const NotConfigured = Type.Object({ configured: Type.Literal(false), reason: Type.String() });
const stellarUnknown = { configured: false as const, reason: 'this process does not know where Stellar is' };
const dependenciesUnknown = { configured: false as const, reason: 'this process has no readiness checks' };

export function parseOlderThan(text: string | undefined): number {
  if (text === undefined) return stuckOlderThanSecondsDefault;
  const seconds = parseDurationSeconds(text);
  if (seconds === undefined || seconds > stuckOlderThanSecondsMax) {
    throw new DomainError(
      'request/validation',
      `olderThan must be a duration such as 90s, 30m, 2h or 1d, at most ${stuckOlderThanSecondsMax / 86_400}d`,
    );
  }
  return seconds;
}

export function incidentRoutes(triage: Triage) {
  return (app: App): void => {
    app.get(
      '/internal/incident/summary',
      {
        config,
        schema: {
          tags,
          description: 'Everything on one page, answered fast.',
          response: { 200: SummarySchema },
        },
      },
      async () => triage.summary(),
    );
    app.get(
      '/internal/incident/stuck-settlements',
      {
        config,
        schema: {
          tags,
          description:
            'Payouts not final after olderThan (default 30m), oldest first; stream settlement runs still running past it or abandoned with an open stream_run_stuck finding; active streams due and not settled past it.',
          querystring: Type.Object({
            olderThan: Type.Optional(Type.String({ maxLength: 12 })),
            limit: Type.Integer({ minimum: 1, maximum: triageListMax, default: 100 }),
          }),
          response: { 200: StuckSchema },
        },
      },
      async (request) =>
        triage.stuckSettlements(parseOlderThan(request.query.olderThan), request.query.limit),
    );
    app.get(
      '/internal/incident/double-payouts',
      {
        config,
        schema: {
          tags,
          description: 'Open double-payout and unknown-outgoing-payment findings.',
          response: { 200: Type.Object({ findings: Type.Array(FindingSchema) }) },
        },
      },
      async () => triage.doublePayouts(),
    );
    app.get(
      '/internal/incident/escrow-leaks',
      { config, schema: { tags, response: { 200: EscrowSchema } } },
      async () => triage.escrowLeaks(),
    );
    app.get(
      '/internal/incident/ledger-imbalance',
      { config, schema: { tags, response: { 200: LedgerSchema } } },
      async () => triage.ledgerImbalance(),
    );
    app.get(
      '/internal/incident/stellar',
      {
        config,
        schema: {
          tags,
          description: 'Each Horizon and RPC path probed now.',
          response: { 200: Type.Union([StellarStatusSchema, NotConfigured]) },
        },
      },
      async () => (await triage.stellar()) ?? stellarUnknown,
    );
    app.get(
      '/internal/incident/dependencies',
      { config, schema: { tags, response: { 200: Type.Union([DependenciesSchema, NotConfigured]) } } },
      async () => (await triage.dependencies()) ?? dependenciesUnknown,
    );
    app.get(
      '/internal/incident/loops',
      {
        config,
        schema: {
          tags,
          description:
            'Every background loop any process reported: processes, last success age, interval, stale; and processes that stopped reporting.',
          response: { 200: LoopsSchema },
        },
      },
      async () => triage.loops(),
    );
    app.get(
      '/internal/incident/payouts/:id/timeline',
      {
        config,
        schema: {
          tags,
          description: 'State history, attempts, on-chain lookups, journals, audit entries and findings.',
          params: Type.Object({ id: Uuid() }),
          response: { 200: TimelineSchema },
        },
      },
      async (request) => triage.payoutTimeline(request.params.id),
    );
    app.post(
      '/internal/incident/snapshot',
      {
        config,
        schema: {
          tags,
          description:
            'Stores everything the triage routes report as one snapshot; moves no money. `incident` is an incident id (the snapshot is attached to it, with a timeline event) or a free-text reference.',
          body: Type.Optional(
            Type.Object(
              {
                incident: Type.Optional(
                  Type.String({
                    pattern: '^[A-Za-z0-9._:-]{1,100}$',
                    description: 'an incident id (lowercase uuid) or a free-text reference',
                  }),
                ),
              },
              { additionalProperties: false },
            ),
          ),
          response: {
            201: Type.Object({
              id: Uuid(),
              takenAt: Type.String({ format: 'date-time' }),
              incidentId: Type.Union([Uuid(), Type.Null()]),
            }),
            400: problemResponse('the body does not match the schema (request/validation)'),
            404: problemResponse('`incident` is an id and no incident has it (incidents/not-found)'),
          },
        },
      },
      async (request, reply) => {
        const snapshot = await triage.snapshot(
          request.principal?.subject ?? '',
          request.body?.incident ?? null,
          request.id,
        );
        return reply.code(201).send(snapshot);
      },
    );
    app.get(
      '/internal/incident/snapshot/:id',
      {
        config,
        schema: {
          tags,
          description: 'One stored snapshot, as it was taken.',
          params: Type.Object({ id: Uuid() }),
          response: {
            200: Type.Intersect([
              SnapshotHeadSchema,
              Type.Object({ content: Type.Record(Type.String(), Type.Unknown()) }),
            ]),
            400: problemResponse('the id is not a uuid (request/validation)'),
            404: problemResponse('no such snapshot (incidents/snapshot-not-found)'),
          },
        },
      },
      async (request) => triage.readSnapshot(request.params.id),
    );
  };
}
