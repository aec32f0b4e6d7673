import type { Status } from './states.ts';

/**
 * Public incident messages as data: Statuspage's vocabulary for the incident's status and for each
 * component, and the templates messages are written from. A template's text names the incident's
 * fields as `{placeholder}`; free text may use the same placeholders. Rendering is pure and refuses
 * a placeholder it does not know or one whose value is missing, so a message never goes out with a
 * literal "{eta}" or an empty "Impact: ." in it.
 */

export const messageKinds = ['status_page', 'customer'] as const;
export type MessageKind = (typeof messageKinds)[number];

/** Best first: the order the status page uses to pick the worst status of a component. */
export const componentStatuses = [
  'operational',
  'degraded_performance',
  'partial_outage',
  'major_outage',
] as const;
export type ComponentStatus = (typeof componentStatuses)[number];

export function worstComponentStatus(statuses: readonly ComponentStatus[]): ComponentStatus {
  let worst = 0;
  for (const status of statuses) worst = Math.max(worst, componentStatuses.indexOf(status));
  return componentStatuses[worst] ?? 'operational';
}

/** How each incident status reads in a public message. */
export const statusLabels = {
  investigating: 'Investigating',
  identified: 'Identified',
  monitoring: 'Monitoring',
  resolved: 'Resolved',
} as const satisfies Record<Status, string>;

export const placeholders = {
  title: "the incident's title",
  impact: "the incident's impact statement",
  components: "the incident's affected components, joined with commas",
  status: "the message's status as a word (Investigating, Identified, Monitoring, Resolved)",
  since: 'when the incident was declared, as 14:05 UTC (with the date when it is not today)',
  eta: 'the time the author gives for the next update or the fix, written like since',
} as const;
export type Placeholder = keyof typeof placeholders;

type Template = {
  description: string;
  kinds: readonly MessageKind[];
  statuses: readonly Status[];
  title: string;
  body: string;
};

/**
 * `payment_delays` is the customer message of docs/runbooks/oncall.md (Customer communication)
 * word for word, its bracketed parts made placeholders; `payment_delays_verifying` is its variant
 * for before the runbook's checks show that no funds were lost. `status_update` and `resolved` are
 * the status page template of seed 004: status, impact, affected components and the time of the
 * next update.
 */
export const messageTemplates = {
  payment_delays: {
    description: 'customers see slow payouts or deposits; no funds lost (checked)',
    kinds: ['customer', 'status_page'],
    statuses: ['investigating', 'identified', 'monitoring'],
    title: 'We are having payment delays',
    body:
      'Since {since}, some {components} are taking longer than usual to complete. No funds have been ' +
      'lost: every affected payment is recorded and will complete, or be returned to the balance it ' +
      'came from, once the problem is fixed. You do not need to retry; retrying may create a second ' +
      'payment. We will post an update by {eta}.',
  },
  payment_delays_verifying: {
    description: 'customers see slow payouts or deposits; money not yet verified',
    kinds: ['customer', 'status_page'],
    statuses: ['investigating', 'identified', 'monitoring'],
    title: 'We are having payment delays',
    body:
      'Since {since}, some {components} are taking longer than usual to complete. We are verifying ' +
      'every affected payment. You do not need to retry; retrying may create a second payment. We ' +
      'will post an update by {eta}.',
  },
  status_update: {
    description: 'the status page entry while the incident is open',
    kinds: ['status_page'],
    statuses: ['investigating', 'identified', 'monitoring'],
    title: '{title}',
    body: '{status}: {impact} Affected: {components}. Next update by {eta}.',
  },
  resolved: {
    description: 'the status page entry that closes the incident',
    kinds: ['status_page', 'customer'],
    statuses: ['resolved'],
    title: '{title}',
    body: 'Resolved: {impact} The problem is fixed and {components} work normally again. No action is needed.',
  },
} as const satisfies Record<string, Template>;
export type TemplateName = keyof typeof messageTemplates;
export const templateNames = Object.keys(messageTemplates) as TemplateName[];

/** Placeholders are lower-case words in braces; any other brace is text. */
const placeholderPattern = /\{([a-z_]+)\}/g;

export type RenderFields = {
  title: string;
  impact: string;
  components: readonly string[];
  status: Status;
  declaredAt: Date;
  eta: Date | undefined;
  now: Date;
};

export type RenderProblem =
  | { problem: 'unknown-placeholder'; placeholder: string }
  | { problem: 'missing-field'; placeholder: Placeholder };

export type Rendered = { title: string; body: string };

/** `14:05 UTC` on the day of `now`, `2026-12-07 09:30 UTC` on any other day. */
export function formatTime(at: Date, now: Date): string {
  const iso = at.toISOString();
  const time = `${iso.slice(11, 16)} UTC`;
  return iso.slice(0, 10) === now.toISOString().slice(0, 10) ? time : `${iso.slice(0, 10)} ${time}`;
}

/** An impact statement ends a sentence in the templates: a full stop is added when it has none. */
function sentence(text: string): string {
  const trimmed = text.trim();
  return trimmed === '' || /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

function values(fields: RenderFields): Record<Placeholder, string> {
  return {
    title: fields.title.trim(),
    impact: sentence(fields.impact),
    components: fields.components.join(', '),
    status: statusLabels[fields.status],
    since: formatTime(fields.declaredAt, fields.now),
    eta: fields.eta ? formatTime(fields.eta, fields.now) : '',
  };
}

/** The placeholders a text names, in order, each once. */
export function placeholdersIn(text: string): string[] {
  return [...new Set([...text.matchAll(placeholderPattern)].map((found) => found[1] ?? ''))];
}

/** Every problem of every part, so one refusal names them all. */
export function renderProblems(parts: readonly string[], fields: RenderFields): RenderProblem[] {
  const known = values(fields);
  const problems: RenderProblem[] = [];
  for (const name of new Set(parts.flatMap(placeholdersIn))) {
    if (!Object.hasOwn(placeholders, name))
      problems.push({ problem: 'unknown-placeholder', placeholder: name });
    else if (known[name as Placeholder] === '') {
      problems.push({ problem: 'missing-field', placeholder: name as Placeholder });
    }
  }
  return problems;
}

/** Call after `renderProblems` found none: every placeholder is known and has a value. */
export function renderText(text: string, fields: RenderFields): string {
  const known = values(fields);
  return text.replace(placeholderPattern, (found, name: string) =>
    Object.hasOwn(known, name) ? known[name as Placeholder] : found,
  );
}
