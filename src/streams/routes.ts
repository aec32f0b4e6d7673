import { Type } from 'typebox';
import {
  metadataKeyLengthMax,
  metadataKeysMax,
  metadataValueLengthMax,
  referenceLengthMax,
} from '../escrow/service.ts';
import { IdempotencyHeaders, sendIdempotent } from '../idempotency/http.ts';
import { assetLengthMax } from '../ledger/routes.ts';
import { type DestinationScreen, screenDestination } from '../payouts/destinations.ts';
import type { Role } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import { selectStreamsPage } from './data.ts';
import { settlementLagFrom } from './metrics.ts';
import {
  cancelStream,
  createStream,
  databaseNow,
  getStreamDetail,
  intervalSecondsMax,
  intervalSecondsMin,
  streamView,
} from './service.ts';
import { streamStatuses } from './states.ts';

/** Like escrow: staff and the service read; the service (the payer's platform) funds streams. */
const readers: readonly Role[] = ['viewer', 'operator', 'admin', 'service'];
const writers: readonly Role[] = ['service'];
/** A stream is cancelled by the payer's platform or by an operator. */
const cancellers: readonly Role[] = ['operator', 'admin', 'service'];
export const streamsPageMax = 200;

const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));

const AmountText = (description: string) => Type.String({ minLength: 1, maxLength: 40, description });
const Instant = Type.String({ format: 'date-time' });
const Address = Type.String({ minLength: 56, maxLength: 69, description: 'G… or M… address' });

export const StreamSchema = Type.Object({
  id: Uuid(),
  holdId: Uuid({ description: 'the escrow hold that funds the stream' }),
  payerAccountId: Uuid(),
  recipientAccountId: Type.Union([Uuid(), Type.Null()]),
  recipientAddress: Type.Union([Address, Type.Null()]),
  asset: Type.String(),
  total: Type.String(),
  accrued: Type.String({ description: 'at asOf, from the schedule; frozen at the cancellation' }),
  settled: Type.String({ description: 'paid to the recipient' }),
  withdrawable: Type.String({ description: 'accrued − settled: what the next settlement pays' }),
  refunded: Type.String({ description: 'returned to the payer by a cancellation' }),
  startAt: Instant,
  cliffAt: Type.Union([Instant, Type.Null()]),
  endAt: Instant,
  settlement: Type.Object({ intervalSeconds: Type.Integer(), minimumAmount: Type.String() }),
  nextSettlementAt: Type.Union([Instant, Type.Null()]),
  cancelledAt: Type.Union([Instant, Type.Null()]),
  status: Type.String({ description: streamStatuses.join(', ') }),
  stateReason: Type.String(),
  reference: Type.Union([Type.String(), Type.Null()]),
  metadata: Type.Record(Type.String(), Type.String()),
  asOf: Instant,
  createdAt: Instant,
  updatedAt: Instant,
});

export const StreamDetailSchema = Type.Intersect([
  StreamSchema,
  Type.Object({
    settlements: Type.Array(
      Type.Object({
        cause: Type.String({ description: 'run or cancel' }),
        runId: Type.Union([Uuid(), Type.Null()]),
        periodIndex: Type.Union([Type.Integer(), Type.Null()]),
        amount: Type.String(),
        asOf: Instant,
        journalId: Uuid(),
        payoutId: Type.Union([Uuid({ description: 'a Stellar recipient: the payout' }), Type.Null()]),
        at: Instant,
      }),
    ),
  }),
]);

const refusals = {
  400: problemResponse('the body does not match the schema, a bad amount or address, or no Idempotency-Key'),
  404: problemResponse('no such stream (streams/not-found) or account'),
  409: problemResponse(
    'streams/already-cancelled, streams/already-completed, streams/ended, or the key is in flight',
  ),
  422: problemResponse(
    'refused by the ledger, the schedule or recipient rules, the payouts path, or the Idempotency-Key was reused',
  ),
  503: problemResponse('payments are in read_only mode, or the database is unavailable'),
};

const StreamBody = Type.Object(
  {
    payerAccountId: Uuid(),
    recipientAccountId: Type.Optional(Uuid({ description: 'a settledesk account; or recipientAddress' })),
    recipientAddress: Type.Optional({
      ...Address,
      description: 'paid through payouts; or recipientAccountId',
    }),
    asset: FreeText({ minLength: 1, maxLength: assetLengthMax }),
    totalAmount: AmountText('positive decimal string: moved into escrow at once'),
    startAt: Instant,
    cliffAt: Type.Optional({
      ...Instant,
      description: 'nothing accrues before it; at it, all since startAt',
    }),
    endAt: Instant,
    settlement: Type.Object(
      {
        intervalSeconds: Type.Integer({ minimum: intervalSecondsMin, maximum: intervalSecondsMax }),
        minimumAmount: Type.Optional(AmountText('a run pays no less, but at the end (default 0)')),
      },
      { additionalProperties: false },
    ),
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
);

export function streamRoutes(sql: Sql, destinations: DestinationScreen) {
  settlementLagFrom(sql);
  const actorOf = (request: { principal?: { subject: string } | undefined; id: string }) => ({
    name: request.principal?.subject ?? '',
    requestId: request.id,
  });
  return (app: App): void => {
    app.post(
      '/v1/streams',
      {
        config: { access: writers },
        schema: {
          tags: ['streams'],
          description:
            'Funds a payment stream: the total moves from the payer into an escrow hold and accrues to the recipient from startAt to endAt.',
          headers: IdempotencyHeaders,
          body: StreamBody,
          response: { 201: StreamSchema, ...refusals },
        },
      },
      async (request, reply) => {
        const address = request.body.recipientAddress;
        // Read before the transaction opens, as POST /v1/payouts does: a slow Stellar path holds no lock.
        const screened =
          address === undefined
            ? undefined
            : await screenDestination(destinations, address, request.body.asset);
        return sendIdempotent(sql, request, reply, async (tx) => ({
          status: 201,
          body: await createStream(tx, request.body, actorOf(request), screened),
        }));
      },
    );
    app.get(
      '/v1/streams',
      {
        config: { access: readers },
        schema: {
          tags: ['streams'],
          description: 'Streams, newest first, each with what has accrued, been settled and refunded now.',
          querystring: Type.Object({
            payer: Type.Optional(Uuid()),
            recipient: Type.Optional(Uuid({ description: 'a recipient account' })),
            status: Type.Optional(literals(streamStatuses)),
            asset: Type.Optional(FreeText({ minLength: 1, maxLength: assetLengthMax })),
            limit: Type.Integer({ minimum: 1, maximum: streamsPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(StreamSchema),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
            400: refusals[400],
          },
        },
      },
      async (request) => {
        const { payer, recipient, status, asset, limit, cursor } = request.query;
        const at = await databaseNow(sql);
        const rows = await selectStreamsPage(sql, {
          payerAccountId: payer,
          recipientAccountId: recipient,
          status,
          asset,
          at,
          after: cursor === undefined ? undefined : decodeCursor(cursor),
          limit,
        });
        const last = rows.at(-1);
        return {
          items: rows.map((row) => streamView(row, at)),
          nextCursor: rows.length === limit && last ? encodeCursor(last) : null,
        };
      },
    );
    app.get(
      '/v1/streams/:id',
      {
        config: { access: readers },
        schema: {
          tags: ['streams'],
          params: Type.Object({ id: Uuid() }),
          response: { 200: StreamDetailSchema, 404: refusals[404] },
        },
      },
      async (request) => getStreamDetail(sql, request.params.id, await databaseNow(sql)),
    );
    app.post(
      '/v1/streams/:id/cancel',
      {
        config: { access: cancellers },
        schema: {
          tags: ['streams'],
          description:
            'Cancels the stream now: what accrued is paid to the recipient, the rest is refunded to the payer.',
          params: Type.Object({ id: Uuid() }),
          headers: IdempotencyHeaders,
          body: Type.Object({}, { additionalProperties: false, description: 'empty: {}' }),
          response: { 200: StreamSchema, ...refusals },
        },
      },
      async (request, reply) =>
        sendIdempotent(sql, request, reply, async (tx) => ({
          status: 200,
          body: await cancelStream(tx, request.params.id, actorOf(request), await databaseNow(tx)),
        })),
    );
  };
}
