import { Type } from 'typebox';
import type { Approvals } from '../approvals/engine.ts';
import { proposalJson } from '../approvals/routes.ts';
import { ReasonSchema } from '../approvals/schemas.ts';
import { IdempotencyHeaders, sendIdempotent } from '../idempotency/http.ts';
import { assetLengthMax } from '../ledger/routes.ts';
import { adminRoles, operatorRoles, type Role } from '../platform/auth/roles.ts';
import type { PayoutConfig } from '../platform/config.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import type { PayoutApprovalPolicy } from './approval.ts';
import { selectManualReview, selectPayoutsPage } from './data.ts';
import { type DestinationScreen, screenDestination } from './destinations.ts';
import { memoTypes } from './memo.ts';
import { acceptPayout, cancelPayout, getPayoutDetail, payoutView, proposeResolve } from './service.ts';
import { payoutStates } from './states.ts';

const readers: readonly Role[] = ['viewer', 'operator', 'admin', 'service'];
const writers: readonly Role[] = ['service'];
/** A service cancels the payouts it created; operators (and admins) cancel any. */
const cancellers: readonly Role[] = ['service', ...operatorRoles];
export const payoutsPageMax = 200;
export const manualReviewPageMax = 200;
export const manualReviewOffsetMax = 100_000;

const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));

const PayoutSchema = Type.Object({
  id: Uuid(),
  sourceAccountId: Uuid(),
  destination: Type.String(),
  asset: Type.String(),
  amount: Type.String(),
  memo: Type.Object({ type: Type.String(), value: Type.Union([Type.String(), Type.Null()]) }),
  state: Type.String(),
  stateReason: Type.String(),
  approvalProposalId: Type.Union([Uuid(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

export const PayoutDetailSchema = Type.Intersect([
  PayoutSchema,
  Type.Object({
    history: Type.Array(
      Type.Object({
        fromState: Type.Union([Type.String(), Type.Null()]),
        toState: Type.String(),
        reason: Type.String(),
        actor: Type.String(),
        attemptId: Type.Union([Type.String(), Type.Null()]),
        at: Type.String({ format: 'date-time' }),
      }),
    ),
    attempts: Type.Array(
      Type.Object({
        id: Type.String(),
        hash: Type.String(),
        channel: Type.String(),
        sequence: Type.String(),
        maxTime: Type.String({ format: 'date-time' }),
        maxLedger: Type.Integer(),
        state: Type.String(),
        outcome: Type.Union([Type.String(), Type.Null()]),
        ledger: Type.Union([Type.Integer(), Type.Null()]),
        submissions: Type.Integer(),
      }),
    ),
  }),
]);

export function payoutRoutes(
  sql: Sql,
  approvals: Approvals,
  destinations: DestinationScreen,
  config: Pick<PayoutConfig, 'approvalThresholds' | 'approvalDailyTotals'>,
) {
  const policy: PayoutApprovalPolicy = {
    approvals,
    thresholds: config.approvalThresholds,
    dailyTotals: config.approvalDailyTotals,
  };
  return (app: App): void => {
    app.post(
      '/v1/payouts',
      {
        config: { access: writers },
        schema: {
          tags: ['payouts'],
          description:
            'Pays a Stellar address from a customer or merchant balance. Settles asynchronously; over an approval threshold it waits in pending_approval for a second admin.',
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              sourceAccountId: Uuid(),
              destination: Type.String({ minLength: 56, maxLength: 69, description: 'G… or M… address' }),
              asset: FreeText({ minLength: 1, maxLength: assetLengthMax }),
              amount: Type.String({ minLength: 1, maxLength: 40 }),
              memo: Type.Optional(
                Type.Object(
                  { type: literals(memoTypes), value: Type.Optional(FreeText({ maxLength: 64 })) },
                  { additionalProperties: false },
                ),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: PayoutSchema },
        },
      },
      async (request, reply) => {
        // Read before the transaction opens: a slow Stellar path holds no connection and no lock.
        const destination = await screenDestination(
          destinations,
          request.body.destination,
          request.body.asset,
        );
        if (destination.account?.kind === 'unknown') {
          request.log.warn(
            { reason: destination.account.reason },
            'destination not read on chain: not refused on its account, settlement decides',
          );
        }
        return sendIdempotent(sql, request, reply, async (tx) => ({
          status: 201,
          body: await acceptPayout(
            tx,
            request.body,
            { name: request.principal?.subject ?? '', requestId: request.id },
            destination,
            policy,
          ),
        }));
      },
    );
    app.get(
      '/v1/payouts',
      {
        config: { access: readers },
        schema: {
          tags: ['payouts'],
          querystring: Type.Object({
            state: Type.Optional(literals(payoutStates)),
            sourceAccountId: Type.Optional(Uuid()),
            limit: Type.Integer({ minimum: 1, maximum: payoutsPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(PayoutSchema),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
          },
        },
      },
      async (request) => {
        const { state, sourceAccountId, limit, cursor } = request.query;
        const rows = await selectPayoutsPage(sql, {
          state,
          sourceAccountId,
          after: cursor === undefined ? undefined : decodeCursor(cursor),
          limit,
        });
        const last = rows.at(-1);
        return {
          items: rows.map(payoutView),
          nextCursor: rows.length === limit && last ? encodeCursor(last) : null,
        };
      },
    );
    app.get(
      '/v1/payouts/manual-review',
      {
        config: { access: readers },
        schema: {
          tags: ['payouts'],
          description: 'Payouts whose outcome could not be determined automatically, oldest first.',
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: manualReviewPageMax, default: 50 }),
            offset: Type.Integer({ minimum: 0, maximum: manualReviewOffsetMax, default: 0 }),
          }),
          response: { 200: Type.Object({ items: Type.Array(PayoutSchema) }) },
        },
      },
      async (request) => ({
        items: (await selectManualReview(sql, request.query.limit, request.query.offset)).map(payoutView),
      }),
    );
    app.get(
      '/v1/payouts/:id',
      {
        config: { access: readers },
        schema: {
          tags: ['payouts'],
          params: Type.Object({ id: Uuid() }),
          response: { 200: PayoutDetailSchema },
        },
      },
      async (request) => getPayoutDetail(sql, request.params.id),
    );
    app.post(
      '/v1/payouts/:id/cancel',
      {
        config: { access: cancellers },
        schema: {
          tags: ['payouts'],
          description:
            'Cancels a payout no settlement transaction was built for (pending_approval or accepted) and refunds it.',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: Type.Object({ reason: ReasonSchema }, { additionalProperties: false }),
          response: {
            200: PayoutSchema,
            400: problemResponse('the body or id does not match the schema, or no Idempotency-Key'),
            404: problemResponse('no such payout, or (for a service) not one it created (payouts/not-found)'),
            409: problemResponse(
              'payouts/already-submitted, payouts/already-cancelled, or the Idempotency-Key is in flight',
            ),
            422: problemResponse('the Idempotency-Key was reused with another body'),
          },
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => ({
          status: 200,
          body: await cancelPayout(tx, {
            payoutId: request.params.id,
            reason: request.body.reason,
            actor: { name: request.principal?.subject ?? '', requestId: request.id },
            ownerOnly: request.principal?.role === 'service' ? request.principal.subject : undefined,
          }),
        })),
    );
    app.post(
      '/v1/payouts/:id/resolve',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['payouts'],
          description:
            'Proposes the resolution of a payout in manual review; a second admin approves it in /v1/approvals.',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: Type.Object(
            { decision: literals(['confirm_sent', 'refund_failed'] as const), reason: ReasonSchema },
            { additionalProperties: false },
          ),
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => {
          const proposal = await proposeResolve(tx, approvals, {
            payoutId: request.params.id,
            decision: request.body.decision,
            reason: request.body.reason,
            proposer: request.principal?.subject ?? '',
            requestId: request.id,
          });
          return { status: 202, body: proposalJson(proposal) };
        }),
    );
  };
}
