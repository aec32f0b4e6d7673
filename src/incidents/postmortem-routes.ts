import { Type } from 'typebox';
import { operatorRoles, staffRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { FreeText, FreeTextLines } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import { actionItemStatuses } from './action-item-states.ts';
import {
  actionItemOwnerLengthMax,
  actionItemReasonLengthMax,
  actionItemsPageMax,
  actionItemTitleLengthMax,
  addActionItem,
  changeActionItem,
  getPostmortemDraft,
  listActionItems,
  postmortemPartLengthMax,
  writePostmortem,
} from './postmortem.ts';
import { renderPostmortemMarkdown } from './postmortem-markdown.ts';
import { countOverdueFrom } from './postmortem-metrics.ts';

/**
 * Post-incident routes under /internal/incidents/{id}: action items and the postmortem. Staff read
 * (viewers included: a postmortem is shared widely); operators and admins write. Service tokens
 * are refused: this is work people do. Everything is allowed on a resolved incident.
 */

const readers = { access: staffRoles };
const writers = { access: operatorRoles };
const tags = ['incidents'];
const markdownContentType = 'text/markdown; charset=utf-8';

const literals = <T extends string>(values: readonly T[]) =>
  Type.Union(values.map((value) => Type.Literal(value)));

const Day = Type.String({ format: 'date', description: 'a day in UTC, YYYY-MM-DD' });
const ActionItemTitle = FreeText({ minLength: 1, maxLength: actionItemTitleLengthMax });
const Owner = FreeText({ minLength: 1, maxLength: actionItemOwnerLengthMax, description: 'who does it' });
const Part = FreeTextLines({ maxLength: postmortemPartLengthMax });

const ActionItemSchema = Type.Object({
  id: Uuid(),
  incidentId: Uuid(),
  title: Type.String(),
  owner: Type.String(),
  dueOn: Type.String({ format: 'date' }),
  status: Type.String({ description: actionItemStatuses.join(', ') }),
  statusReason: Type.String(),
  overdue: Type.Boolean({ description: 'open and its due day (UTC) has passed' }),
  createdBy: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
});

const PostmortemSchema = Type.Object({
  incidentId: Uuid(),
  rootCause: Type.String(),
  wentWell: Type.String(),
  wentWrong: Type.String(),
  lessonsLearned: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedBy: Type.Union([Type.String(), Type.Null()]),
  updatedAt: Type.String({ format: 'date-time' }),
});

const DraftJsonSchema = Type.Object({
  incidentId: Uuid(),
  generatedAt: Type.String({ format: 'date-time' }),
  markdown: Type.String(),
  postmortem: Type.Union([PostmortemSchema, Type.Null()]),
  actionItems: Type.Array(ActionItemSchema),
  timelineEvents: Type.Integer({ description: 'events rendered in the timeline section' }),
  timelineLeftOut: Type.Integer({ description: 'events beyond the draft limit, not rendered' }),
});

const IncidentParams = Type.Object({ id: Uuid() });
const ItemParams = Type.Object({ id: Uuid(), itemId: Uuid() });

const refusals = {
  400: problemResponse('the request does not match the schema (request/validation), or a bad cursor'),
  404: problemResponse(
    'no such incident (incidents/not-found) or action item (incidents/action-item-not-found)',
  ),
  409: problemResponse('incidents/action-item-illegal-transition or incidents/action-items-full'),
};

export function postmortemRoutes(sql: Sql) {
  countOverdueFrom(sql);
  return (app: App): void => {
    const actor = (request: { principal?: { subject: string }; id: string }) => ({
      name: request.principal?.subject ?? '',
      requestId: request.id,
    });

    app.get(
      '/internal/incidents/:id/action-items',
      {
        config: readers,
        schema: {
          tags,
          description: "The incident's action items, oldest first, each with its owner and due day.",
          params: IncidentParams,
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: actionItemsPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: {
            200: Type.Object({
              items: Type.Array(ActionItemSchema),
              nextCursor: Type.Union([Type.String(), Type.Null()]),
            }),
            400: refusals[400],
            404: refusals[404],
          },
        },
      },
      async (request) => {
        const { limit, cursor } = request.query;
        const after = cursor === undefined ? undefined : decodeCursor(cursor);
        const { rows, items } = await listActionItems(sql, request.params.id, after, limit);
        const last = rows.at(-1);
        return { items, nextCursor: rows.length === limit && last ? encodeCursor(last) : null };
      },
    );

    app.post(
      '/internal/incidents/:id/action-items',
      {
        config: writers,
        schema: {
          tags,
          description:
            'Adds an open action item (an action_item_added timeline event); resolved incidents too.',
          params: IncidentParams,
          body: Type.Object(
            { title: ActionItemTitle, owner: Owner, dueOn: Day },
            { additionalProperties: false },
          ),
          response: { 201: ActionItemSchema, 400: refusals[400], 404: refusals[404], 409: refusals[409] },
        },
      },
      async (request, reply) => {
        const item = await addActionItem(sql, request.params.id, request.body, actor(request));
        return reply.code(201).send(item);
      },
    );

    app.patch(
      '/internal/incidents/:id/action-items/:itemId',
      {
        config: writers,
        schema: {
          tags,
          description:
            'Moves an action item to done, cancelled or back to open, and/or changes its title, owner or due day (an action_item_updated timeline event when anything changed).',
          params: ItemParams,
          body: Type.Object(
            {
              status: Type.Optional(literals(actionItemStatuses)),
              reason: Type.Optional(FreeText({ minLength: 1, maxLength: actionItemReasonLengthMax })),
              title: Type.Optional(ActionItemTitle),
              owner: Type.Optional(Owner),
              dueOn: Type.Optional(Day),
            },
            // A reason explains a status change; alone it would be accepted and dropped.
            { additionalProperties: false, minProperties: 1, dependencies: { reason: ['status'] } },
          ),
          response: { 200: ActionItemSchema, 400: refusals[400], 404: refusals[404], 409: refusals[409] },
        },
      },
      async (request) =>
        changeActionItem(sql, request.params.id, request.params.itemId, request.body, actor(request)),
    );

    app.put(
      '/internal/incidents/:id/postmortem',
      {
        config: writers,
        schema: {
          tags,
          description:
            'Writes parts of the postmortem; parts left out keep their text. Creates it on the first edit (a postmortem_drafted timeline event when anything changed).',
          params: IncidentParams,
          body: Type.Object(
            {
              rootCause: Type.Optional(Part),
              wentWell: Type.Optional(Part),
              wentWrong: Type.Optional(Part),
              lessonsLearned: Type.Optional(Part),
            },
            { additionalProperties: false, minProperties: 1 },
          ),
          response: { 200: PostmortemSchema, 400: refusals[400], 404: refusals[404] },
        },
      },
      async (request) => writePostmortem(sql, request.params.id, request.body, actor(request)),
    );

    app.get(
      '/internal/incidents/:id/postmortem',
      {
        config: readers,
        schema: {
          tags,
          description:
            'The postmortem draft generated from the record, its timeline, action items and the parts people wrote: Markdown, or JSON with format=json. Writes nothing.',
          params: IncidentParams,
          querystring: Type.Object({
            format: Type.Union([Type.Literal('markdown'), Type.Literal('json')], { default: 'markdown' }),
          }),
          response: {
            200: {
              description: 'the draft',
              content: {
                'text/markdown': { schema: Type.String() },
                'application/json': { schema: DraftJsonSchema },
              },
            },
            400: refusals[400],
            404: refusals[404],
          },
        },
      },
      async (request, reply) => {
        const draft = await getPostmortemDraft(sql, request.params.id);
        const markdown = renderPostmortemMarkdown(draft);
        if (request.query.format === 'markdown') return reply.type(markdownContentType).send(markdown);
        return reply.type('application/json').send({
          incidentId: draft.incident.id,
          generatedAt: draft.generatedAt,
          markdown,
          postmortem: draft.postmortem,
          actionItems: draft.actionItems,
          timelineEvents: draft.timeline.length,
          timelineLeftOut: draft.timelineLeftOut,
        });
      },
    );
  };
}
