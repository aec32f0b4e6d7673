import { Type } from 'typebox';
import type { Executor, Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { Uuid } from '../platform/ids.ts';
import { type MessageRow, selectStatusIncidents, selectStatusMessages } from './message-data.ts';
import { type Status, statuses } from './states.ts';
import { type ComponentStatus, componentStatuses, worstComponentStatus } from './templates.ts';

/**
 * The public status page: what customers may read without a token. It is built only from
 * published status-page messages (a preview or a refused message is never stored, a customer
 * message is not shown here) and shows no field of the incident record itself, whose title and
 * impact are written for the team, not checked for personal data.
 */

/** Open incidents first, then recently resolved ones, at most this many. */
export const statusIncidentsMax = 20;
export const statusUpdatesPerIncidentMax = 10;
/** A resolved incident stays on the page this long after it was resolved. */
export const statusResolvedShownSeconds = 7 * 86_400;
/** Shared caches may keep the page this long: a burst of readers costs one query per interval. */
export const statusCacheSeconds = 15;

export type StatusUpdateView = {
  status: Status;
  title: string;
  body: string;
  components: { name: string; status: ComponentStatus }[];
  publishedAt: string;
};

export type StatusIncidentView = {
  id: string;
  title: string;
  status: Status;
  startedAt: string;
  resolvedAt: string | null;
  updates: StatusUpdateView[];
};

export type StatusPageView = {
  generatedAt: string;
  status: ComponentStatus;
  components: { name: string; status: ComponentStatus }[];
  incidents: StatusIncidentView[];
};

function updateView(row: MessageRow): StatusUpdateView {
  return {
    status: row.status,
    title: row.title,
    body: row.body,
    components: row.components.map((entry) => ({ name: entry.component, status: entry.status })),
    publishedAt: row.publishedAt.toISOString(),
  };
}

/**
 * A component's status is the worst one published by the newest status-page message of each open
 * incident (a newer message replaces what the older ones said); a component no open incident's
 * newest message names is operational.
 */
export async function statusPage(db: Executor, components: readonly string[]): Promise<StatusPageView> {
  const incidents = await selectStatusIncidents(db, statusResolvedShownSeconds, statusIncidentsMax);
  const messages = await selectStatusMessages(
    db,
    incidents.map((incident) => incident.id),
    statusUpdatesPerIncidentMax,
  );
  const published = new Map<string, ComponentStatus[]>(components.map((name) => [name, []]));
  const views: StatusIncidentView[] = [];
  for (const incident of incidents) {
    const updates = messages.filter((message) => message.incidentId === incident.id);
    const newest = updates[0];
    const first = updates.at(-1);
    if (!newest || !first) continue;
    if (incident.resolvedAt === null) {
      for (const entry of newest.components) published.get(entry.component)?.push(entry.status);
    }
    views.push({
      id: incident.id,
      title: newest.title,
      status: newest.status,
      startedAt: first.publishedAt.toISOString(),
      resolvedAt: incident.resolvedAt?.toISOString() ?? null,
      updates: updates.map(updateView),
    });
  }
  const componentViews = [...published].map(([name, statuses]) => ({
    name,
    status: worstComponentStatus(statuses),
  }));
  return {
    generatedAt: new Date().toISOString(),
    status: worstComponentStatus(componentViews.map((component) => component.status)),
    components: componentViews,
    incidents: views,
  };
}

const htmlEscapes: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => htmlEscapes[char] ?? char);
}

const componentLabels: Record<ComponentStatus, string> = {
  operational: 'Operational',
  degraded_performance: 'Degraded performance',
  partial_outage: 'Partial outage',
  major_outage: 'Major outage',
};

/** A minimal page: no script, no external resource, every value escaped. */
export function statusPageHtml(view: StatusPageView): string {
  const e = escapeHtml;
  const components = view.components
    .map(
      (c) => `<tr><td>${e(c.name)}</td><td class="${e(c.status)}">${e(componentLabels[c.status])}</td></tr>`,
    )
    .join('\n');
  const incidents = view.incidents
    .map((incident) => {
      const updates = incident.updates
        .map(
          (update) =>
            `<li><strong>${e(update.status)}</strong> <time>${e(update.publishedAt)}</time><p>${e(update.body)}</p></li>`,
        )
        .join('\n');
      const state = incident.resolvedAt === null ? 'ongoing' : `resolved ${incident.resolvedAt}`;
      return `<section><h3>${e(incident.title)}</h3><p>${e(state)}</p><ul>\n${updates}\n</ul></section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Status</title>
<style>body{font-family:sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}td{padding:.2rem 1rem .2rem 0}.operational{color:#1a7f37}.degraded_performance{color:#9a6700}.partial_outage{color:#bc4c00}.major_outage{color:#cf222e}</style>
</head>
<body>
<h1>Status: ${e(componentLabels[view.status])}</h1>
<table>
${components}
</table>
<h2>Incidents</h2>
${incidents === '' ? '<p>No incidents reported.</p>' : incidents}
<p><small>Generated ${e(view.generatedAt)}</small></p>
</body>
</html>
`;
}

const Iso = Type.String({ format: 'date-time' });
/** A string of a closed list, typed as that list's union. */
export const literals = <T extends string>(values: readonly T[]) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values] });
const ComponentStatusSchema = literals(componentStatuses);

export const StatusPageSchema = Type.Object({
  generatedAt: Iso,
  status: ComponentStatusSchema,
  components: Type.Array(Type.Object({ name: Type.String(), status: ComponentStatusSchema })),
  incidents: Type.Array(
    Type.Object({
      id: Uuid(),
      title: Type.String(),
      status: literals(statuses),
      startedAt: Iso,
      resolvedAt: Type.Union([Iso, Type.Null()]),
      updates: Type.Array(
        Type.Object({
          status: literals(statuses),
          title: Type.String(),
          body: Type.String(),
          components: Type.Array(Type.Object({ name: Type.String(), status: ComponentStatusSchema })),
          publishedAt: Iso,
        }),
      ),
    }),
  ),
});

const publicHeaders = {
  'cache-control': `public, max-age=${statusCacheSeconds}`,
  'x-content-type-options': 'nosniff',
};

/** Unauthenticated and read-only, like the health routes. */
export function statusRoutes(sql: Sql, components: readonly string[]) {
  return (app: App): void => {
    app.get(
      '/status',
      {
        config: { access: 'public' },
        schema: {
          tags: ['status'],
          description:
            'The public status page as JSON: component statuses and the published status-page messages of open and recently resolved incidents.',
          response: { 200: StatusPageSchema },
        },
      },
      async (_request, reply) => {
        reply.headers(publicHeaders);
        return statusPage(sql, components);
      },
    );
    app.get(
      '/status.html',
      {
        config: { access: 'public' },
        schema: {
          tags: ['status'],
          description: 'The public status page as a minimal HTML page (no script).',
          produces: ['text/html'],
          response: { 200: Type.String() },
        },
      },
      async (_request, reply) =>
        reply
          .headers({
            ...publicHeaders,
            'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
          })
          .type('text/html; charset=utf-8')
          .send(statusPageHtml(await statusPage(sql, components))),
    );
  };
}
