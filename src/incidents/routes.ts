import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { operatorRoles, staffRoles } from '../platform/auth/roles.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { cursorLengthMax, decodeCursor, encodeCursor } from '../platform/http/cursor.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { Uuid } from '../platform/ids.ts';
import type { IncidentRow } from './data.ts';
import {
  DeclareBody,
  DetailsBody,
  EmptyBody,
  IncidentDetailSchema,
  IncidentPageSchema,
  IncidentSchema,
  NoteBody,
  RoleBody,
  RoleNameSchema,
  RolesSchema,
  SeverityBody,
  SeveritySchema,
  StatusBody,
  StatusSchema,
  TimelineEventSchema,
  TimelinePageSchema,
} from './schemas.ts';
import {
  type Actor,
  acknowledgeIncident,
  addNote,
  assignRole,
  changeDetails,
  changeSeverity,
  changeStatus,
  declareIncident,
  getIncidentDetail,
  getTimeline,
  listIncidents,
  renounceIncidentRole,
  timelinePageMax,
} from './service.ts';

/**
 * Incident records under /internal/incidents: staff read (viewers included: a record names no
 * customer), operators and admins act. `service` tokens are refused: they belong to the merchant
 * platform, which has no business with incidents; Alertmanager has its own intake route.
 */

const readers = { access: staffRoles };
const actors = { access: operatorRoles };
const tags = ['incidents'];
export const incidentsPageMax = 200;
export const timelinePageDefault = 100;

const IdParams = Type.Object({ id: Uuid() });
const badInput = problemResponse('the request does not match the schema (request/validation)');
const notFound = problemResponse('no such incident (incidents/not-found)');
const refusals = {
  400: badInput,
  404: notFound,
  409: problemResponse(
    'incidents/illegal-transition (no transition to that status) or incidents/resolved (reopen it first)',
  ),
};

/** The cursor of the page after `rows`, or null when `rows` is the last page. */
export function nextIncidentCursor(rows: readonly IncidentRow[], limit: number): string | null {
  const last = rows.at(-1);
  return rows.length === limit && last ? encodeCursor({ createdAt: last.declaredAt, id: last.id }) : null;
}

function actorOf(request: FastifyRequest): Actor {
  return { name: request.principal?.subject ?? '', requestId: request.id };
}

export function incidentRecordRoutes(sql: Sql) {
  return (app: App): void => {
    app.post(
      '/internal/incidents',
      {
        config: actors,
        schema: {
          tags,
          description: 'Declares an incident; the declaring person has acknowledged it.',
          body: DeclareBody,
          response: { 201: IncidentSchema, 400: badInput },
        },
      },
      async (request, reply) =>
        reply.code(201).send(await declareIncident(sql, request.body, actorOf(request))),
    );
    app.get(
      '/internal/incidents',
      {
        config: readers,
        schema: {
          tags,
          description: 'Incidents, newest first; `open=true` lists the unresolved ones.',
          querystring: Type.Object({
            status: Type.Optional(StatusSchema),
            severity: Type.Optional(SeveritySchema),
            open: Type.Optional(Type.Boolean()),
            limit: Type.Integer({ minimum: 1, maximum: incidentsPageMax, default: 50 }),
            cursor: Type.Optional(Type.String({ maxLength: cursorLengthMax })),
          }),
          response: { 200: IncidentPageSchema, 400: badInput },
        },
      },
      async (request) => {
        const { status, severity, open, limit, cursor } = request.query;
        const after = cursor === undefined ? undefined : decodeCursor(cursor);
        const { rows, items } = await listIncidents(sql, { status, severity, open }, after, limit);
        return { items, nextCursor: nextIncidentCursor(rows, limit) };
      },
    );
    app.get(
      '/internal/incidents/:id',
      {
        config: readers,
        schema: {
          tags,
          description:
            'The record with its targets, every role term, the newest timeline events and snapshots.',
          params: IdParams,
          response: { 200: IncidentDetailSchema, 400: badInput, 404: notFound },
        },
      },
      async (request) => {
        const detail = await getIncidentDetail(sql, request.params.id);
        return {
          ...detail,
          timeline: { ...detail.timeline, href: `/internal/incidents/${request.params.id}/timeline` },
        };
      },
    );
    app.patch(
      '/internal/incidents/:id',
      {
        config: actors,
        schema: {
          tags,
          description: 'Changes the title, impact or components; the timeline keeps before and after.',
          params: IdParams,
          body: DetailsBody,
          response: { 200: IncidentSchema, ...refusals },
        },
      },
      async (request) => changeDetails(sql, request.params.id, request.body, actorOf(request)),
    );
    app.post(
      '/internal/incidents/:id/status',
      {
        config: actors,
        schema: {
          tags,
          description:
            'Moves the incident along its status machine (src/incidents/states.ts); resolved reopens.',
          params: IdParams,
          body: StatusBody,
          response: { 200: IncidentSchema, ...refusals },
        },
      },
      async (request) =>
        changeStatus(sql, request.params.id, request.body.to, request.body.reason, actorOf(request)),
    );
    app.post(
      '/internal/incidents/:id/severity',
      {
        config: actors,
        schema: {
          tags,
          params: IdParams,
          body: SeverityBody,
          response: { 200: IncidentSchema, ...refusals },
        },
      },
      async (request) =>
        changeSeverity(sql, request.params.id, request.body.severity, request.body.reason, actorOf(request)),
    );
    app.post(
      '/internal/incidents/:id/acknowledge',
      {
        config: actors,
        schema: {
          tags,
          description:
            'Acknowledges an incident opened by an alert; a second acknowledgement changes nothing.',
          params: IdParams,
          body: EmptyBody,
          response: { 200: IncidentSchema, 400: badInput, 404: notFound },
        },
      },
      async (request) => acknowledgeIncident(sql, request.params.id, actorOf(request)),
    );
    app.put(
      '/internal/incidents/:id/roles/:role',
      {
        config: actors,
        schema: {
          tags,
          description: "Gives the role to `subject`, ending the previous holder's term.",
          params: Type.Object({ id: Uuid(), role: RoleNameSchema }),
          body: RoleBody,
          response: { 200: RolesSchema, ...refusals },
        },
      },
      async (request) => ({
        roles: await assignRole(
          sql,
          request.params.id,
          request.params.role,
          request.body.subject,
          actorOf(request),
        ),
      }),
    );
    app.post(
      '/internal/incidents/:id/roles/:role/renounce',
      {
        config: actors,
        schema: {
          tags,
          description: "Ends the current holder's term, if anyone holds the role.",
          params: Type.Object({ id: Uuid(), role: RoleNameSchema }),
          body: EmptyBody,
          response: { 200: RolesSchema, 400: badInput, 404: notFound },
        },
      },
      async (request) => ({
        roles: await renounceIncidentRole(sql, request.params.id, request.params.role, actorOf(request)),
      }),
    );
    app.post(
      '/internal/incidents/:id/notes',
      {
        config: actors,
        schema: {
          tags,
          description: 'A note by hand on the timeline; resolved incidents take notes too.',
          params: IdParams,
          body: NoteBody,
          response: { 201: TimelineEventSchema, 400: badInput, 404: notFound },
        },
      },
      async (request, reply) =>
        reply.code(201).send(await addNote(sql, request.params.id, request.body.text, actorOf(request))),
    );
    app.get(
      '/internal/incidents/:id/timeline',
      {
        config: readers,
        schema: {
          tags,
          description: 'The typed timeline, oldest first, paged by event id.',
          params: IdParams,
          querystring: Type.Object({
            after: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'an event id' })),
            limit: Type.Integer({ minimum: 1, maximum: timelinePageMax, default: timelinePageDefault }),
          }),
          response: { 200: TimelinePageSchema, 400: badInput, 404: notFound },
        },
      },
      async (request) => {
        const { after, limit } = request.query;
        const items = await getTimeline(
          sql,
          request.params.id,
          after === undefined ? undefined : BigInt(after),
          limit,
        );
        return { items, nextAfter: items.length === limit ? (items.at(-1)?.id ?? null) : null };
      },
    );
  };
}
