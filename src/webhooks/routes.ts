import { type TSchema, Type } from 'typebox';
import { adminRoles, operatorRoles } from '../platform/auth/roles.ts';
import type { App } from '../platform/http/app.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import type { Runtime } from '../platform/runtime.ts';
import { endpointAddressPolicy } from './address-policy.ts';
import { merchantEventTypes } from './event-types.ts';
import { countGaugesFrom } from './metrics.ts';
import { endpointSecretBox } from './secrets.ts';
import {
  addSecret,
  attemptsPageMax,
  createEndpoint,
  deliveriesPageMax,
  descriptionLengthMax,
  endpointsPageMax,
  getDeliveryDetail,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  ownerRefLengthMax,
  reasonLengthMax,
  replayDelivery,
  retireSecret,
  setEndpointEnabled,
  urlLengthMax,
} from './service.ts';

/**
 * `/v1/webhook-endpoints`: managing endpoints (where events go, with which secret) is for admins;
 * reading the delivery log and replaying dead letters is on-call work, open to operators too.
 */

export const eventTypesPerEndpointMax = 16;
const eventTypeLengthMax = 64;

const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const IdParams = Type.Object({ id: Uuid() });
const ReasonBody = Type.Object(
  { reason: FreeText({ minLength: 1, maxLength: reasonLengthMax }) },
  { additionalProperties: false },
);

const EndpointSchema = Type.Object({
  id: Uuid(),
  url: Type.String(),
  description: nullable(Type.String()),
  ownerRef: nullable(Type.String()),
  eventTypes: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  rotationStartedAt: nullable(
    Type.String({
      format: 'date-time',
      description: 'when the newest secret was added while the previous one still signs; null: one secret',
    }),
  ),
  createdBy: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

const DeliveryStatusSchema = Type.Union([
  Type.Literal('pending'),
  Type.Literal('delivered'),
  Type.Literal('dead_lettered'),
]);

const DeliverySchema = Type.Object({
  id: Uuid(),
  eventId: Uuid({ description: 'sent as webhook-id: the same on every attempt and replay' }),
  eventType: Type.String(),
  endpointId: Uuid(),
  status: DeliveryStatusSchema,
  attempts: Type.Integer(),
  replays: Type.Integer(),
  nextAttemptAt: nullable(Type.String({ format: 'date-time' })),
  lastError: nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  deliveredAt: nullable(Type.String({ format: 'date-time' })),
  deadLetteredAt: nullable(Type.String({ format: 'date-time' })),
});

const AttemptSchema = Type.Object({
  attempt: Type.Integer(),
  statusCode: nullable(Type.Integer()),
  durationMs: Type.Integer(),
  error: nullable(Type.String()),
  responseBody: nullable(Type.String()),
  attemptedAt: Type.String({ format: 'date-time' }),
});

export function merchantWebhookRoutes(runtime: Runtime) {
  const { sql, config } = runtime;
  const secrets = endpointSecretBox(config);
  const policy = endpointAddressPolicy(config.merchantWebhooks);
  countGaugesFrom(sql);
  return (app: App): void => {
    app.get(
      '/v1/webhook-endpoints/event-types',
      {
        config: { access: operatorRoles },
        schema: {
          tags: ['merchant webhooks'],
          response: {
            200: Type.Object({
              items: Type.Array(Type.Object({ type: Type.String(), description: Type.String() })),
            }),
          },
        },
      },
      async () => ({
        items: Object.entries(merchantEventTypes).map(([type, description]) => ({ type, description })),
      }),
    );
    app.post(
      '/v1/webhook-endpoints',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['merchant webhooks'],
          description:
            'Registers a merchant endpoint. The answer carries its signing secret (whsec_…), shown this once only.',
          body: Type.Object(
            {
              url: FreeText({ minLength: 1, maxLength: urlLengthMax }),
              eventTypes: Type.Array(FreeText({ minLength: 1, maxLength: eventTypeLengthMax }), {
                minItems: 1,
                maxItems: eventTypesPerEndpointMax,
              }),
              ownerRef: nullable(
                FreeText({
                  minLength: 1,
                  maxLength: ownerRefLengthMax,
                  description: "only events about accounts with this ownerRef; null: every account's events",
                }),
              ),
              description: Type.Optional(FreeText({ minLength: 1, maxLength: descriptionLengthMax })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Intersect([EndpointSchema, Type.Object({ secret: Type.String() })]) },
        },
      },
      async (request, reply) => {
        const created = await createEndpoint(
          sql,
          { secrets, allowHttp: config.merchantWebhooks.allowHttp, policy },
          { ...request.body, description: request.body.description ?? null },
          { name: request.principal?.subject ?? '', requestId: request.id },
        );
        return reply.code(201).send({ ...created.endpoint, secret: created.secret });
      },
    );
    app.get(
      '/v1/webhook-endpoints',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['merchant webhooks'],
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: endpointsPageMax, default: 50 }),
          }),
          response: { 200: Type.Object({ items: Type.Array(EndpointSchema) }) },
        },
      },
      async (request) => ({ items: await listEndpoints(sql, request.query.limit) }),
    );
    app.get(
      '/v1/webhook-endpoints/:id',
      {
        config: { access: adminRoles },
        schema: { tags: ['merchant webhooks'], params: IdParams, response: { 200: EndpointSchema } },
      },
      async (request) => getEndpoint(sql, request.params.id),
    );
    for (const [action, enabled] of [
      ['disable', false],
      ['enable', true],
    ] as const) {
      app.post(
        `/v1/webhook-endpoints/:id/${action}`,
        {
          config: { access: adminRoles },
          schema: {
            tags: ['merchant webhooks'],
            params: IdParams,
            body: ReasonBody,
            response: { 200: EndpointSchema },
          },
        },
        async (request) =>
          setEndpointEnabled(
            sql,
            { id: request.params.id, enabled, reason: request.body.reason },
            { name: request.principal?.subject ?? '', requestId: request.id },
          ),
      );
    }
    app.post(
      '/v1/webhook-endpoints/:id/secrets',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['merchant webhooks'],
          description:
            'Adds a signing secret (shown this once): deliveries are signed with it and with the current one until `…/secrets/retire-previous`.',
          params: IdParams,
          response: { 201: Type.Intersect([EndpointSchema, Type.Object({ secret: Type.String() })]) },
        },
      },
      async (request, reply) => {
        const added = await addSecret(sql, { secrets }, request.params.id, {
          name: request.principal?.subject ?? '',
          requestId: request.id,
        });
        return reply.code(201).send({ ...added.endpoint, secret: added.secret });
      },
    );
    app.post(
      '/v1/webhook-endpoints/:id/secrets/retire-previous',
      {
        config: { access: adminRoles },
        schema: {
          tags: ['merchant webhooks'],
          description: 'Ends a rotation: the previous secret stops signing deliveries.',
          params: IdParams,
          response: { 200: EndpointSchema },
        },
      },
      async (request) =>
        retireSecret(sql, request.params.id, {
          name: request.principal?.subject ?? '',
          requestId: request.id,
        }),
    );
    app.get(
      '/v1/webhook-endpoints/deliveries',
      {
        config: { access: operatorRoles },
        schema: {
          tags: ['merchant webhooks'],
          description: 'The delivery log, newest first; `status=dead_lettered` is the dead-letter queue.',
          querystring: Type.Object({
            status: Type.Optional(DeliveryStatusSchema),
            endpointId: Type.Optional(Uuid()),
            limit: Type.Integer({ minimum: 1, maximum: deliveriesPageMax, default: 50 }),
          }),
          response: { 200: Type.Object({ items: Type.Array(DeliverySchema) }) },
        },
      },
      async (request) => ({
        items: await listDeliveries(sql, {
          status: request.query.status,
          endpointId: request.query.endpointId,
          limit: request.query.limit,
        }),
      }),
    );
    app.get(
      '/v1/webhook-endpoints/deliveries/:id',
      {
        config: { access: operatorRoles },
        schema: {
          tags: ['merchant webhooks'],
          description: `A delivery with its attempts (at most ${attemptsPageMax}): status code, duration, error, response.`,
          params: IdParams,
          response: {
            200: Type.Intersect([DeliverySchema, Type.Object({ log: Type.Array(AttemptSchema) })]),
          },
        },
      },
      async (request) => getDeliveryDetail(sql, request.params.id),
    );
    app.post(
      '/v1/webhook-endpoints/deliveries/:id/replay',
      {
        config: { access: operatorRoles },
        schema: {
          tags: ['merchant webhooks'],
          description: 'Sends a dead-lettered delivery again (same webhook-id), with a fresh attempt budget.',
          params: IdParams,
          response: { 200: DeliverySchema },
        },
      },
      async (request) =>
        replayDelivery(sql, request.params.id, {
          name: request.principal?.subject ?? '',
          requestId: request.id,
        }),
    );
  };
}
