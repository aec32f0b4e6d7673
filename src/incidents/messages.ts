import { randomUUID } from 'node:crypto';
import { assert } from '../platform/assert.ts';
import { operatorRoles, type Role } from '../platform/auth/roles.ts';
import type { CommunicationsConfig } from '../platform/config.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { type IncidentRow, selectIncident, selectRoles } from './data.ts';
import {
  type ComponentStatusRow,
  insertMessage,
  insertMessageComponents,
  type MessageRow,
  selectMessage,
  selectMessagesPage,
} from './message-data.ts';
import { createPiiCheck, type PiiCheck, type PiiMatch } from './pii.ts';
import { type Actor, appendTimeline, lockIncident } from './service.ts';
import type { Status } from './states.ts';
import {
  type ComponentStatus,
  type MessageKind,
  messageTemplates,
  type Rendered,
  type RenderFields,
  renderProblems,
  renderText,
  type TemplateName,
} from './templates.ts';

export const messageTitleLengthMax = 200;
export const messageBodyLengthMax = 5_000;
export const messageComponentsMax = 20;
export const messagesPageMax = 200;
/** An ETA further out than this is a typo, not a promise a status page should carry. */
export const etaAheadSecondsMax = 7 * 86_400;

/** What a message is checked against: the redaction list's check and the status page's components. */
export type CommunicationsSettings = { piiCheck: PiiCheck; statusComponents: readonly string[] };

export function communicationSettings(config: CommunicationsConfig): CommunicationsSettings {
  return {
    piiCheck: createPiiCheck({ redactionNames: config.redactionNames }),
    statusComponents: config.statusComponents,
  };
}

/** A template, or free text (which may use the same placeholders); `status` defaults to the incident's. */
export type MessageInput = {
  kind: MessageKind;
  status?: Status;
  template?: TemplateName;
  title?: string;
  text?: string;
  components?: readonly ComponentStatusRow[];
  eta?: Date;
};

/** Who publishes: operators and admins always; a viewer only while holding the incident's communications role. */
export type Publisher = Actor & { role: Role };

export type MessagePiiMatch = PiiMatch & { field: 'title' | 'body' };

/** A message as written: what a preview shows and what publishing stores. */
export type DraftView = {
  incidentId: string;
  kind: MessageKind;
  status: Status;
  template: string | null;
  title: string;
  body: string;
  components: { component: string; status: ComponentStatus }[];
  eta: string | null;
};

export type MessageView = DraftView & {
  id: string;
  publishedBy: string;
  publishedAt: string;
  timelineEventId: string;
};

export type PreviewView = { publishable: boolean; message: DraftView; pii: MessagePiiMatch[] };

export function messageView(row: MessageRow): MessageView {
  return {
    id: row.id,
    incidentId: row.incidentId,
    kind: row.kind,
    status: row.status,
    template: row.template,
    title: row.title,
    body: row.body,
    components: row.components,
    eta: row.eta?.toISOString() ?? null,
    publishedBy: row.publishedBy,
    publishedAt: row.publishedAt.toISOString(),
    timelineEventId: row.timelineId.toString(),
  };
}

function invalid(detail: string, field: string): DomainError {
  return new DomainError('request/validation', detail, { errors: [{ field, message: detail }] });
}

type Composed = {
  status: Status;
  template: TemplateName | null;
  rendered: Rendered;
  components: ComponentStatusRow[];
  pii: MessagePiiMatch[];
};

/** The parts to render: a template's, or the author's free text under a title (default: the incident's). */
function sourceOf(input: MessageInput, status: Status): { title: string; body: string } {
  if ((input.template === undefined) === (input.text === undefined)) {
    throw invalid('give a template or a text, not both and not neither', 'body.template');
  }
  if (input.template === undefined) return { title: input.title ?? '{title}', body: input.text ?? '' };
  if (input.title !== undefined) throw invalid('a title goes with a text, not with a template', 'body.title');
  const template = messageTemplates[input.template];
  if (!(template.kinds as readonly MessageKind[]).includes(input.kind)) {
    throw new DomainError(
      'incidents/template-not-applicable',
      `template ${input.template} is for ${template.kinds.join(' and ')} messages, not ${input.kind}`,
    );
  }
  if (!(template.statuses as readonly Status[]).includes(status)) {
    throw new DomainError(
      'incidents/template-not-applicable',
      `template ${input.template} is for the statuses ${template.statuses.join(', ')}, not ${status}`,
    );
  }
  return template;
}

function checkComponents(
  components: readonly ComponentStatusRow[],
  settings: CommunicationsSettings,
): ComponentStatusRow[] {
  const names = components.map((entry) => entry.component);
  const repeated = names.find((name, index) => names.indexOf(name) !== index);
  if (repeated !== undefined) throw invalid(`component ${repeated} is given twice`, 'body.components');
  const unknown = names.filter((name) => !settings.statusComponents.includes(name));
  if (unknown.length > 0) {
    throw new DomainError(
      'incidents/unknown-component',
      `not a component of the status page: ${unknown.join(', ')} (STATUS_PAGE_COMPONENTS lists ${settings.statusComponents.join(', ')})`,
      { components: unknown },
    );
  }
  return [...components].sort((a, b) => a.component.localeCompare(b.component));
}

function checkEta(eta: Date | undefined, now: Date): void {
  if (eta === undefined) return;
  const at = eta.getTime();
  // A time the schema's format accepts but Date cannot hold (a leap second) is NaN: refused too.
  if (!(at > now.getTime() && at <= now.getTime() + etaAheadSecondsMax * 1_000)) {
    throw invalid(`eta must be in the future and within ${etaAheadSecondsMax / 86_400} days`, 'body.eta');
  }
}

/** Renders the message from the incident as it is now and runs the personal-data check on it. */
export function composeMessage(
  incident: IncidentRow,
  input: MessageInput,
  settings: CommunicationsSettings,
  now: Date,
): Composed {
  const status = input.status ?? incident.status;
  const source = sourceOf(input, status);
  const components = checkComponents(input.components ?? [], settings);
  checkEta(input.eta, now);
  const fields: RenderFields = {
    title: incident.title,
    impact: incident.impact,
    components: incident.components,
    status,
    declaredAt: incident.declaredAt,
    eta: input.eta,
    now,
  };
  const problems = renderProblems([source.title, source.body], fields);
  const unknown = problems.filter((problem) => problem.problem === 'unknown-placeholder');
  if (unknown.length > 0) {
    throw new DomainError(
      'incidents/unknown-placeholder',
      `unknown placeholder(s): ${unknown.map((problem) => `{${problem.placeholder}}`).join(', ')}`,
      { placeholders: unknown.map((problem) => problem.placeholder) },
    );
  }
  if (problems.length > 0) {
    const missing = problems.map((problem) => problem.placeholder);
    throw new DomainError(
      'incidents/missing-field',
      `the message needs ${missing.map((name) => `{${name}}`).join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} empty: give an eta, or set the incident's impact and components`,
      { placeholders: missing },
    );
  }
  const rendered = { title: renderText(source.title, fields), body: renderText(source.body, fields) };
  if (rendered.title.length > messageTitleLengthMax || rendered.body.length > messageBodyLengthMax) {
    throw invalid(
      `the rendered message is longer than ${messageTitleLengthMax} (title) or ${messageBodyLengthMax} (body) characters`,
      'body.text',
    );
  }
  const pii = [
    ...settings.piiCheck(rendered.title).map((found) => ({ ...found, field: 'title' as const })),
    ...settings.piiCheck(rendered.body).map((found) => ({ ...found, field: 'body' as const })),
  ];
  return { status, template: input.template ?? null, rendered, components, pii };
}

/**
 * Operators and admins publish for any incident; a viewer publishes only while holding the
 * incident's communications role, the person the incident named to talk to customers.
 */
async function ensureMayPublish(db: Executor, incidentId: string, publisher: Publisher): Promise<void> {
  if (operatorRoles.includes(publisher.role)) return;
  const roles = await selectRoles(db, incidentId);
  const holder = roles.find((role) => role.role === 'communications' && role.renouncedAt === null);
  if (publisher.role === 'viewer' && holder?.subject === publisher.name) return;
  throw new DomainError(
    'auth/forbidden',
    'publishing needs the operator or admin role, or a viewer holding the incident’s communications role',
  );
}

function piiRefusal(pii: readonly MessagePiiMatch[]): DomainError {
  const found = pii.map((match) => `${match.kind} in the ${match.field} at ${match.offset}`);
  return new DomainError(
    'incidents/pii-detected',
    `the message contains personal data or secrets: ${found.join('; ')}`,
    { matches: pii },
  );
}

/** The message as it would be published, with every personal-data match; nothing is written. */
export async function previewMessage(
  db: Executor,
  incidentId: string,
  input: MessageInput,
  settings: CommunicationsSettings,
  publisher: Publisher,
): Promise<PreviewView> {
  const incident = await selectIncident(db, incidentId);
  if (!incident) throw new DomainError('incidents/not-found', `no incident ${incidentId}`);
  await ensureMayPublish(db, incidentId, publisher);
  const composed = composeMessage(incident, input, settings, new Date());
  return {
    publishable: composed.pii.length === 0,
    message: {
      incidentId,
      kind: input.kind,
      status: composed.status,
      template: composed.template,
      ...composed.rendered,
      components: composed.components,
      eta: input.eta?.toISOString() ?? null,
    },
    pii: composed.pii,
  };
}

/**
 * Publishes under the incident's row lock: rendered from the incident as it is at that moment,
 * checked, stored with its component statuses and its `message_published` timeline event (and so
 * its audit row) in one transaction. A message with personal data is refused and nothing is written.
 */
export async function publishMessage(
  sql: Sql,
  incidentId: string,
  input: MessageInput,
  settings: CommunicationsSettings,
  publisher: Publisher,
): Promise<MessageView> {
  return withTransaction(sql, async (tx) => {
    const incident = await lockIncident(tx, incidentId);
    await ensureMayPublish(tx, incidentId, publisher);
    const composed = composeMessage(incident, input, settings, new Date());
    if (composed.pii.length > 0) throw piiRefusal(composed.pii);
    const id = randomUUID();
    const event = await appendTimeline(
      tx,
      incidentId,
      {
        kind: 'message_published',
        source: 'person',
        summary: `${input.kind} message (${composed.status}): ${composed.rendered.title}`,
        detail: {
          messageId: id,
          kind: input.kind,
          status: composed.status,
          template: composed.template,
          components: composed.components,
        },
      },
      publisher,
    );
    await insertMessage(tx, {
      id,
      incidentId,
      kind: input.kind,
      status: composed.status,
      template: composed.template,
      ...composed.rendered,
      eta: input.eta ?? null,
      publishedBy: publisher.name,
      timelineId: BigInt(event.id),
    });
    await insertMessageComponents(tx, id, composed.components);
    const row = await selectMessage(tx, id);
    assert(row, 'a message inserted in this transaction was not found');
    return messageView(row);
  });
}

export async function listMessages(
  db: Executor,
  incidentId: string,
  after: { createdAt: Date; id: string } | undefined,
  limit: number,
): Promise<{ items: MessageView[]; last: MessageRow | undefined }> {
  if (!(await selectIncident(db, incidentId))) {
    throw new DomainError('incidents/not-found', `no incident ${incidentId}`);
  }
  const rows = await selectMessagesPage(db, incidentId, after, limit);
  return { items: rows.map(messageView), last: rows.at(-1) };
}
