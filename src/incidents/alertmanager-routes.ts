import { Type } from 'typebox';
import type { Role } from '../platform/auth/roles.ts';
import type { App } from '../platform/http/app.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { Uuid } from '../platform/ids.ts';
import type { Runtime } from '../platform/runtime.ts';
import { alertsPerNotificationMax, receiveNotification } from './alertmanager.ts';

/**
 * Alertmanager's webhook. Alertmanager calls it with a service token or with the shared secret of
 * ALERTMANAGER_WEBHOOK_TOKEN (its `http_config.authorization` sends a fixed bearer credential).
 * A 4xx is never retried by Alertmanager, so only a payload that can never be accepted gets one;
 * a database that is down answers 503 through the platform, which Alertmanager retries.
 */

const callers: readonly Role[] = ['service'];
/** The principal a delivery carrying the shared secret acts as: the timeline's actor. */
export const alertmanagerSubject = 'alertmanager';
export const labelsMax = 64;
export const labelNameLengthMax = 200;
export const labelValueLengthMax = 2_000;
export const annotationValueLengthMax = 8_000;
export const groupKeyLengthMax = 4_000;
export const fingerprintLengthMax = 64;
const urlLengthMax = 2_000;

const Labels = Type.Record(
  Type.String({ minLength: 1, maxLength: labelNameLengthMax }),
  Type.String({ maxLength: labelValueLengthMax }),
  { maxProperties: labelsMax },
);
const Annotations = Type.Record(
  Type.String({ minLength: 1, maxLength: labelNameLengthMax }),
  Type.String({ maxLength: annotationValueLengthMax }),
  { maxProperties: labelsMax },
);
const Status = Type.Union([Type.Literal('firing'), Type.Literal('resolved')]);
const Url = Type.String({ maxLength: urlLengthMax });

/** Alertmanager's webhook payload, version 4; fields it may add later are accepted and ignored. */
export const NotificationSchema = Type.Object({
  version: Type.Literal('4'),
  groupKey: Type.String({ minLength: 1, maxLength: groupKeyLengthMax }),
  truncatedAlerts: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000 })),
  status: Status,
  receiver: Type.String({ minLength: 1, maxLength: 200 }),
  groupLabels: Labels,
  commonLabels: Labels,
  commonAnnotations: Annotations,
  externalURL: Url,
  alerts: Type.Array(
    Type.Object({
      status: Status,
      labels: Labels,
      annotations: Annotations,
      startsAt: Type.String({ format: 'date-time' }),
      endsAt: Type.Optional(Type.String({ format: 'date-time' })),
      generatorURL: Type.Optional(Url),
      fingerprint: Type.String({ minLength: 1, maxLength: fingerprintLengthMax }),
    }),
    { maxItems: alertsPerNotificationMax },
  ),
});

export const IntakeOutcomeSchema = Type.Object({
  incidentId: Type.Union([Uuid(), Type.Null()]),
  incidentOpened: Type.Boolean(),
  firingAdded: Type.Integer(),
  resolvedAdded: Type.Integer(),
  resolvedUnknown: Type.Integer({
    description: 'resolved alerts never seen firing: recorded, nothing opened',
  }),
  unchanged: Type.Integer({ description: 'repeated or stale alerts: nothing changed' }),
  truncatedRecorded: Type.Boolean(),
});

export function alertmanagerRoutes(runtime: Runtime) {
  const { alertmanager } = runtime.config;
  return (app: App): void => {
    app.post(
      '/internal/alertmanager',
      {
        config: {
          access: callers,
          bearerSecret: {
            subject: alertmanagerSubject,
            role: 'service',
            secrets: alertmanager.webhookTokens,
          },
        },
        schema: {
          tags: ['incidents'],
          description:
            "Alertmanager webhook (version 4): firing alerts open or add to the group's incident; resolved alerts add to the timeline and never resolve it; repeats change nothing.",
          body: NotificationSchema,
          response: {
            200: IntakeOutcomeSchema,
            400: problemResponse('the payload is not an Alertmanager version 4 notification within bounds'),
            401: problemResponse('no service token and not the shared secret'),
            403: problemResponse('a token of another role'),
            413: problemResponse('the body is larger than REQUEST_BODY_BYTES_MAX'),
            415: problemResponse('the body is not application/json'),
            503: problemResponse('the database is unavailable or busy: nothing kept, Alertmanager retries', {
              'retry-after': {
                type: 'integer',
                minimum: 1,
                description: 'seconds to wait before sending it again',
              },
            }),
          },
        },
      },
      async (request) =>
        receiveNotification(runtime.sql, alertmanager, request.body, {
          name: request.principal?.subject ?? alertmanagerSubject,
          requestId: request.id,
        }),
    );
  };
}
