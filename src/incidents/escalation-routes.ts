import { type TSchema, Type } from 'typebox';
import { adminRoles, operatorRoles, staffRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import {
  completeReminder,
  getEscalationPolicy,
  getEscalationSteps,
  getReminders,
  remindersPageMax,
  setEscalationPolicy,
  stepsPageMax,
} from './escalation.ts';
import { stepStates } from './escalation-data.ts';
import { countOverdueRemindersFrom } from './escalation-metrics.ts';
import {
  policyReasonLengthMax,
  policyStepsMax,
  stepAfterSecondsMax,
  stepAfterSecondsMin,
  targetLengthMax,
  targetPattern,
} from './escalation-policy.ts';
import { manualReminderKinds } from './reminders.ts';
import { ReminderSchema } from './schemas.ts';
import { severities } from './states.ts';

/**
 * Escalation policy (viewers read, admins replace) and each incident's frozen steps and update
 * reminders (viewers read, operators close a reminder by hand).
 */

const tags = ['incidents'];
/** Keyset cursor of the step and reminder lists: the last id of the page before. */
const IdCursor = Type.String({ pattern: '^[0-9]{1,18}$', description: 'nextCursor of the previous page' });

export const PolicyStepSchema = Type.Object(
  {
    severities: Type.Array(
      Type.Union([Type.Literal('P0'), Type.Literal('P1'), Type.Literal('P2'), Type.Literal('P3')]),
      {
        minItems: 1,
        maxItems: severities.length,
      },
    ),
    afterSeconds: Type.Integer({ minimum: stepAfterSecondsMin, maximum: stepAfterSecondsMax }),
    target: Type.String({ minLength: 1, maxLength: targetLengthMax, pattern: targetPattern }),
  },
  { additionalProperties: false },
);

const PolicySchema = Type.Object({
  version: Type.Integer(),
  steps: Type.Array(PolicyStepSchema),
  reason: Type.String(),
  createdBy: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
});

const StepSchema = Type.Object({
  id: Type.String(),
  policyVersion: Type.Integer(),
  position: Type.Integer(),
  severities: Type.Array(Type.String()),
  target: Type.String(),
  afterSeconds: Type.Integer(),
  dueAt: Type.String({ format: 'date-time' }),
  state: Type.String({ description: stepStates.join(', ') }),
  stateReason: Type.String(),
  ranAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  cancelledAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

/** One keyset page of an incident's list: the cursor is the last id of the page before. */
async function page<T extends { id: string }>(
  query: { limit: number; cursor?: string | undefined },
  list: (after: bigint | undefined, limit: number) => Promise<T[]>,
): Promise<{ items: T[]; nextCursor: string | null }> {
  const items = await list(query.cursor === undefined ? undefined : BigInt(query.cursor), query.limit);
  return { items, nextCursor: items.length === query.limit ? (items.at(-1)?.id ?? null) : null };
}

const PageQuery = (max: number) =>
  Type.Object({
    limit: Type.Integer({ minimum: 1, maximum: max, default: 50 }),
    cursor: Type.Optional(IdCursor),
  });

const badRequest = problemResponse('the request does not match the schema');
const notFound = problemResponse('no such incident (incidents/not-found)');

/** An incident's list (viewers): its params, page query and responses. */
function listSchema<T extends TSchema>(item: T, max: number, description: string) {
  return {
    tags,
    description,
    params: Type.Object({ id: Uuid() }),
    querystring: PageQuery(max),
    response: {
      200: Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
      400: badRequest,
      404: notFound,
    },
  };
}

export function escalationRoutes(sql: Sql) {
  countOverdueRemindersFrom(sql);
  return (app: App): void => {
    app.get(
      '/internal/incident-policies/escalation',
      {
        config: { access: staffRoles },
        schema: {
          tags,
          description:
            'The escalation policy in force: ordered, timed steps frozen onto each incident at declaration.',
          response: { 200: PolicySchema },
        },
      },
      async () => getEscalationPolicy(sql),
    );
    app.put(
      '/internal/incident-policies/escalation',
      {
        config: { access: adminRoles },
        schema: {
          tags,
          description:
            'Stores a new version of the escalation policy (audited). Running incidents keep the version they were declared under.',
          body: Type.Object(
            {
              steps: Type.Array(PolicyStepSchema, { maxItems: policyStepsMax }),
              reason: FreeText({ minLength: 1, maxLength: policyReasonLengthMax }),
            },
            { additionalProperties: false },
          ),
          response: {
            200: PolicySchema,
            400: problemResponse(
              'the body does not match the schema, or the steps are not in firing order (incidents/escalation-policy-invalid)',
            ),
          },
        },
      },
      async (request) =>
        setEscalationPolicy(sql, request.body, {
          name: request.principal?.subject ?? '',
          requestId: request.id,
        }),
    );
    app.get(
      '/internal/incidents/:id/escalation-steps',
      {
        config: { access: staffRoles },
        schema: listSchema(
          StepSchema,
          stepsPageMax,
          "The steps frozen onto the incident, with each one's state; oldest first.",
        ),
      },
      async (request) =>
        page(request.query, (after, limit) => getEscalationSteps(sql, request.params.id, after, limit)),
    );
    app.get(
      '/internal/incidents/:id/reminders',
      {
        config: { access: staffRoles },
        schema: listSchema(
          ReminderSchema,
          remindersPageMax,
          'Update reminders of the incident, open and done, oldest first; `overdue` marks open ones past due.',
        ),
      },
      async (request) =>
        page(request.query, (after, limit) => getReminders(sql, request.params.id, after, limit)),
    );
    app.post(
      '/internal/incidents/:id/reminders/:kind/done',
      {
        config: { access: operatorRoles },
        schema: {
          tags,
          description:
            'Closes a reminder that only a person can close (the postmortem meeting was held); recorded on the timeline. Returns the open reminders.',
          params: Type.Object({ id: Uuid(), kind: Type.Literal(manualReminderKinds[0]) }),
          response: {
            200: Type.Object({ items: Type.Array(ReminderSchema) }),
            400: badRequest,
            404: notFound,
            409: problemResponse('no open reminder of that kind (incidents/no-open-reminder)'),
          },
        },
      },
      async (request) => ({
        items: await completeReminder(sql, request.params.id, request.params.kind, {
          name: request.principal?.subject ?? '',
          requestId: request.id,
        }),
      }),
    );
  };
}
