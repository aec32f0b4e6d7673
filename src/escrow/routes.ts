import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Approvals } from '../approvals/engine.ts';
import { proposalJson } from '../approvals/routes.ts';
import { ProposalSchema, ReasonSchema } from '../approvals/schemas.ts';
import { IdempotencyHeaders, sendIdempotent } from '../idempotency/http.ts';
import { problemBody } from '../idempotency/idempotency.ts';
import { assetLengthMax } from '../ledger/routes.ts';
import {
  type DestinationScreen,
  type ScreenedDestination,
  screenDestination,
} from '../payouts/destinations.ts';
import { adminRoles, type Role } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import { disputeStates, selectDisputesPage, selectHold, selectHoldsPage } from './data.ts';
import {
  createHold,
  disputeReasonLengthMax,
  disputeView,
  evidenceRefLengthMax,
  evidenceRefsMax,
  getHoldDetail,
  holdView,
  type MoveKind,
  metadataKeyLengthMax,
  metadataKeysMax,
  metadataValueLengthMax,
  moveFromHold,
  openDispute,
  proposeResolution,
  type ReleasePayout,
  referenceLengthMax,
} from './service.ts';
import { expiryOutcomes, holdStates } from './states.ts';

/** Like payouts: staff and the service read; the service (the merchant platform) moves money. */
const readers: readonly Role[] = ['viewer', 'operator', 'admin', 'service'];
const writers: readonly Role[] = ['service'];
/** A dispute is opened by the payer's platform or by an operator. */
const disputers: readonly Role[] = ['operator', 'admin', 'service'];
export const holdsPageMax = 200;
export const disputesPageMax = 200;

const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));

const AmountText = Type.String({ minLength: 1, maxLength: 40, description: 'positive decimal string' });

export const HoldSchema = Type.Object({
  id: Uuid(),
  payerAccountId: Uuid(),
  payeeAccountId: Uuid(),
  asset: Type.String(),
  amount: Type.String(),
  released: Type.String(),
  refunded: Type.String(),
  remaining: Type.String(),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  expiryOutcome: Type.String({ description: 'refund or release' }),
  reference: Type.Union([Type.String(), Type.Null()]),
  metadata: Type.Record(Type.String(), Type.String()),
  managedBy: Type.Union([
    Type.String({
      description: 'stream: a payment stream owns the hold, and escrow routes refuse to move it',
    }),
    Type.Null(),
  ]),
  state: Type.String({ description: holdStates.join(', ') }),
  stateReason: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const DisputeSchema = Type.Object({
  id: Uuid(),
  holdId: Uuid(),
  reason: Type.String(),
  evidenceRefs: Type.Array(Type.String()),
  openedBy: Type.String(),
  state: Type.String({ description: 'open or resolved' }),
  outcome: Type.Union([Type.String({ description: 'release, refund or split' }), Type.Null()]),
  proposalId: Type.Union([Uuid(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  resolvedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

export const HoldDetailSchema = Type.Intersect([
  HoldSchema,
  Type.Object({
    movements: Type.Array(
      Type.Object({
        kind: Type.String({ description: 'release or refund' }),
        amount: Type.String(),
        cause: Type.String({ description: 'request, expiry or dispute_resolution' }),
        journalId: Uuid(),
        payoutId: Type.Union([
          Uuid({ description: 'a release to a Stellar address: its payout' }),
          Type.Null(),
        ]),
        at: Type.String({ format: 'date-time' }),
      }),
    ),
    dispute: Type.Union([DisputeSchema, Type.Null()]),
  }),
]);

const refusals = {
  400: problemResponse('the body does not match the schema, a bad amount, or no Idempotency-Key'),
  404: problemResponse('no such hold (escrow/hold-not-found) or account'),
  409: problemResponse(
    'escrow/exceeds-remaining, escrow/hold-closed, escrow/hold-expired, escrow/hold-disputed, escrow/hold-managed, or the key is in flight',
  ),
  422: problemResponse('refused by the ledger or the hold rules, or the Idempotency-Key was reused'),
};

const MoveBody = Type.Object(
  { amount: Type.Optional({ ...AmountText, description: 'omitted: what remains of the hold' }) },
  { additionalProperties: false },
);

const ReleaseBody = Type.Object(
  {
    amount: Type.Optional({ ...AmountText, description: 'omitted: what remains of the hold' }),
    destination: Type.Optional(
      Type.String({
        minLength: 56,
        maxLength: 69,
        description: 'G… or M… address: the release is paid on from the payee account as a payout',
      }),
    ),
  },
  { additionalProperties: false },
);

export function escrowRoutes(sql: Sql, approvals: Approvals, destinations: DestinationScreen) {
  /** The destination as the payouts path reads it, in the hold's asset (a missing hold: 404 later). */
  const screenForHold = async (holdId: string, destination: string): Promise<ScreenedDestination> => {
    const hold = await selectHold(sql, holdId);
    return screenDestination(destinations, destination, hold?.asset ?? 'XLM');
  };
  const moveRoute = (
    request: FastifyRequest,
    reply: FastifyReply,
    input: { holdId: string; kind: MoveKind; amount: string | undefined; payout: ReleasePayout | undefined },
  ) =>
    sendIdempotent(sql, request, reply, async (tx) => {
      const outcome = await moveFromHold(tx, input, {
        name: request.principal?.subject ?? '',
        requestId: request.id,
      });
      // A refusal that was recorded commits with its record and is answered as a problem.
      if ('refused' in outcome) {
        return {
          status: outcome.refused.status,
          body: problemBody(outcome.refused, request.url, request.id),
        };
      }
      return { status: 200, body: outcome.hold };
    });
  return (app: App): void => {
    app.post(
      '/v1/escrow/holds',
      {
        config: { access: writers },
        schema: {
          tags: ['escrow'],
          description: 'Moves an amount from the payer account into escrow until it is released or refunded.',
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              payerAccountId: Uuid(),
              payeeAccountId: Uuid(),
              asset: FreeText({ minLength: 1, maxLength: assetLengthMax }),
              amount: AmountText,
              expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
              expiryOutcome: Type.Optional(literals(expiryOutcomes)),
              reference: Type.Optional(FreeText({ minLength: 1, maxLength: referenceLengthMax })),
              metadata: Type.Optional(
                Type.Record(
                  Type.String({ minLength: 1, maxLength: metadataKeyLengthMax }),
                  FreeText({ maxLength: metadataValueLengthMax }),
                  { maxProperties: metadataKeysMax },
                ),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: HoldSchema, ...refusals },
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => ({
          status: 201,
          body: await createHold(tx, request.body, {
            name: request.principal?.subject ?? '',
            requestId: request.id,
          }),
        })),
    );
    app.get(
      '/v1/escrow/holds',
      {
        config: { access: readers },
        schema: {
          tags: ['escrow'],
          description: 'Holds, newest first; a hold past its expiresAt is listed as expired.',
          querystring: Type.Object({
            payer: Type.Optional(Uuid()),
            payee: Type.Optional(Uuid()),
            state: Type.Optional(literals(holdStates)),
            asset: Type.Optional(FreeText({ minLength: 1, maxLength: assetLengthMax })),
            limit: Type.Integer({ minimum: 1, maximum: holdsPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(HoldSchema),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
            400: refusals[400],
          },
        },
      },
      async (request) => {
        const { payer, payee, state, asset, limit, cursor } = request.query;
        const rows = await selectHoldsPage(sql, {
          payerAccountId: payer,
          payeeAccountId: payee,
          state,
          asset,
          after: cursor === undefined ? undefined : decodeCursor(cursor),
          limit,
        });
        const last = rows.at(-1);
        return {
          items: rows.map(holdView),
          nextCursor: rows.length === limit && last ? encodeCursor(last) : null,
        };
      },
    );
    app.get(
      '/v1/escrow/disputes',
      {
        config: { access: readers },
        schema: {
          tags: ['escrow'],
          description: 'Disputes, newest first; `state=open` lists the ones waiting for a resolution.',
          querystring: Type.Object({
            state: Type.Optional(literals(disputeStates)),
            limit: Type.Integer({ minimum: 1, maximum: disputesPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(DisputeSchema),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
            400: refusals[400],
          },
        },
      },
      async (request) => {
        const { state, limit, cursor } = request.query;
        const rows = await selectDisputesPage(sql, {
          state,
          after: cursor === undefined ? undefined : decodeCursor(cursor),
          limit,
        });
        const last = rows.at(-1);
        return {
          items: rows.map(disputeView),
          nextCursor: rows.length === limit && last ? encodeCursor(last) : null,
        };
      },
    );
    app.get(
      '/v1/escrow/holds/:id',
      {
        config: { access: readers },
        schema: {
          tags: ['escrow'],
          params: Type.Object({ id: Uuid() }),
          response: { 200: HoldDetailSchema, 404: refusals[404] },
        },
      },
      async (request) => getHoldDetail(sql, request.params.id),
    );
    app.post(
      '/v1/escrow/holds/:id/releases',
      {
        config: { access: writers },
        schema: {
          tags: ['escrow'],
          description:
            'Pays part or all of what remains of the hold to the payee account or, with `destination`, on to that Stellar address through the payouts path.',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: ReleaseBody,
          response: { 200: HoldSchema, ...refusals },
        },
      },
      async (request, reply) => {
        const target = request.body?.destination;
        // Read before the transaction opens, as POST /v1/payouts does: a slow Stellar path holds no lock.
        const payout =
          target === undefined
            ? undefined
            : { destination: target, screened: await screenForHold(request.params.id, target) };
        return moveRoute(request, reply, {
          holdId: request.params.id,
          kind: 'release',
          amount: request.body?.amount,
          payout,
        });
      },
    );
    app.post(
      '/v1/escrow/holds/:id/refunds',
      {
        config: { access: writers },
        schema: {
          tags: ['escrow'],
          description: 'Returns part or all of what remains of the hold to the payer account.',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: MoveBody,
          response: { 200: HoldSchema, ...refusals },
        },
      },
      async (request, reply) =>
        moveRoute(request, reply, {
          holdId: request.params.id,
          kind: 'refund',
          amount: request.body?.amount,
          payout: undefined,
        }),
    );
    app.post(
      '/v1/escrow/holds/:id/disputes',
      {
        config: { access: disputers },
        schema: {
          tags: ['escrow'],
          description: 'Freezes the hold: release, refund and expiry wait for a two-person resolution.',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              reason: FreeText({ minLength: 1, maxLength: disputeReasonLengthMax }),
              evidenceRefs: Type.Optional(
                Type.Array(FreeText({ minLength: 1, maxLength: evidenceRefLengthMax }), {
                  maxItems: evidenceRefsMax,
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: HoldDetailSchema, ...refusals },
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => ({
          status: 201,
          body: await openDispute(
            tx,
            {
              holdId: request.params.id,
              reason: request.body.reason,
              evidenceRefs: request.body.evidenceRefs ?? [],
            },
            { name: request.principal?.subject ?? '', requestId: request.id },
          ),
        })),
    );
    app.post(
      '/v1/escrow/holds/:id/dispute-resolutions',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['escrow'],
          description:
            'Proposes how a disputed hold ends; a second admin approves it in /v1/approvals (action escrow.resolve_dispute).',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              outcome: literals(['release', 'refund', 'split'] as const),
              releaseAmount: Type.Optional(AmountText),
              refundAmount: Type.Optional(AmountText),
              reason: ReasonSchema,
            },
            { additionalProperties: false },
          ),
          response: { 202: ProposalSchema, ...refusals },
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => {
          const proposal = await proposeResolution(tx, approvals, {
            holdId: request.params.id,
            outcome: request.body.outcome,
            releaseAmount: request.body.releaseAmount,
            refundAmount: request.body.refundAmount,
            reason: request.body.reason,
            proposer: request.principal?.subject ?? '',
            requestId: request.id,
          });
          return { status: 202, body: proposalJson(proposal) };
        }),
    );
  };
}
