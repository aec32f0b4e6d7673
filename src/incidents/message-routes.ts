import { Type } from 'typebox';
import { type Role, staffRoles } from '../platform/auth/roles.ts';
import type { CommunicationsConfig } from '../platform/config.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import {
  communicationSettings,
  listMessages,
  messageBodyLengthMax,
  messageComponentsMax,
  messagesPageMax,
  messageTitleLengthMax,
  previewMessage,
  publishMessage,
} from './messages.ts';
import { piiKinds } from './pii.ts';
import { statuses } from './states.ts';
import { literals, statusRoutes } from './status-page.ts';
import { componentStatuses, messageKinds, templateNames } from './templates.ts';

/**
 * `/internal/incidents/{id}/messages`: every staff role may call both routes; publishing is then
 * decided per incident (operators and admins; a viewer only while holding the incident's
 * communications role), so a viewer is refused with 403 by the service, not by the route's roles.
 */
const access: readonly Role[] = staffRoles;
const tags = ['incidents'];

const ComponentStatusEntry = Type.Object(
  {
    component: Type.String({ minLength: 1, maxLength: 60, pattern: '^[a-z][a-z0-9_-]*$' }),
    status: literals(componentStatuses),
  },
  { additionalProperties: false },
);

const MessageBody = Type.Object(
  {
    kind: literals(messageKinds),
    status: Type.Optional(literals(statuses)),
    template: Type.Optional(literals(templateNames)),
    title: Type.Optional(FreeText({ minLength: 1, maxLength: messageTitleLengthMax })),
    text: Type.Optional(FreeText({ minLength: 1, maxLength: messageBodyLengthMax })),
    components: Type.Optional(Type.Array(ComponentStatusEntry, { maxItems: messageComponentsMax })),
    eta: Type.Optional(Type.String({ format: 'date-time', maxLength: 40 })),
    dryRun: Type.Boolean({ default: false, description: 'true: render and check, store nothing' }),
  },
  { additionalProperties: false },
);

const ComponentsSchema = Type.Array(
  Type.Object({ component: Type.String(), status: literals(componentStatuses) }),
);

const DraftSchema = Type.Object({
  incidentId: Uuid(),
  kind: literals(messageKinds),
  status: literals(statuses),
  template: Type.Union([Type.String(), Type.Null()]),
  title: Type.String(),
  body: Type.String(),
  components: ComponentsSchema,
  eta: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

export const MessageSchema = Type.Intersect([
  DraftSchema,
  Type.Object({
    id: Uuid(),
    publishedBy: Type.String(),
    publishedAt: Type.String({ format: 'date-time' }),
    timelineEventId: Type.String(),
  }),
]);

const PiiMatchSchema = Type.Object({
  field: literals(['title', 'body'] as const),
  kind: Type.String({ description: Object.keys(piiKinds).join(', ') }),
  text: Type.String(),
  offset: Type.Integer({ description: 'UTF-16 code units from the start of the field' }),
  reason: Type.String(),
});

export const PreviewSchema = Type.Object({
  publishable: Type.Boolean(),
  message: DraftSchema,
  pii: Type.Array(PiiMatchSchema),
});

/** The message routes and the public status page. */
export function communicationRoutes(sql: Sql, config: CommunicationsConfig) {
  const settings = communicationSettings(config);
  const status = statusRoutes(sql, config.statusComponents);
  return (app: App): void => {
    status(app);
    app.post(
      '/internal/incidents/:id/messages',
      {
        config: { access },
        schema: {
          tags,
          description:
            'Renders a status-page or customer message from a template or free text with the incident’s fields and checks it for personal data; `dryRun` answers the preview (200), otherwise it is published (201) with a `message_published` timeline event.',
          params: Type.Object({ id: Uuid() }),
          body: MessageBody,
          response: {
            200: PreviewSchema,
            201: MessageSchema,
            400: problemResponse('the body does not match the schema, or a component is given twice'),
            403: problemResponse('a viewer who does not hold the incident’s communications role'),
            404: problemResponse('no such incident (incidents/not-found)'),
            422: problemResponse(
              'incidents/pii-detected (with `matches`), incidents/unknown-placeholder, incidents/missing-field, incidents/template-not-applicable or incidents/unknown-component',
            ),
          },
        },
      },
      async (request, reply) => {
        const { dryRun, eta, ...rest } = request.body;
        const input = { ...rest, eta: eta === undefined ? undefined : new Date(eta) };
        const publisher = {
          name: request.principal?.subject ?? '',
          role: request.principal?.role ?? 'viewer',
          requestId: request.id,
        };
        if (dryRun)
          return reply
            .code(200)
            .send(await previewMessage(sql, request.params.id, input, settings, publisher));
        return reply.code(201).send(await publishMessage(sql, request.params.id, input, settings, publisher));
      },
    );
    app.get(
      '/internal/incidents/:id/messages',
      {
        config: { access },
        schema: {
          tags,
          description: 'The incident’s published messages, newest first.',
          params: Type.Object({ id: Uuid() }),
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: messagesPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(MessageSchema),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
            400: problemResponse('a bad limit or cursor'),
            404: problemResponse('no such incident (incidents/not-found)'),
          },
        },
      },
      async (request) => {
        const { limit, cursor } = request.query;
        const page = await listMessages(
          sql,
          request.params.id,
          cursor === undefined ? undefined : decodeCursor(cursor),
          limit,
        );
        return {
          items: page.items,
          nextCursor:
            page.items.length === limit && page.last
              ? encodeCursor({ createdAt: page.last.publishedAt, id: page.last.id })
              : null,
        };
      },
    );
  };
}
