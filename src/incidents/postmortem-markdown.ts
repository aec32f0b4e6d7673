import type { PostmortemDraft } from './postmortem.ts';
import { severityTargets } from './states.ts';

/**
 * The postmortem draft as Markdown, following seed 004's template: summary, duration, severity,
 * impact, timeline, root cause, what went well, what went wrong, action items, lessons learned.
 * Every section is always there; one with nothing written says so. Every value that comes from a
 * person or an alert is escaped so that no text can end a table row, open a heading, a list, a
 * quote, a code block, a link or raw HTML: the document keeps its structure whatever was typed.
 */

export const draftSections = [
  'Summary',
  'Duration',
  'Severity',
  'Impact',
  'Timeline',
  'Root cause',
  'What went well',
  'What went wrong',
  'Action items',
  'Lessons learned',
] as const;

export const notWritten = '_Not written yet._';

/** Characters with a meaning inside a line of Markdown (CommonMark's backslash-escapable ones that matter). */
const inlineSpecial = /[\\`*_[\]<>#|~&!]/g;

/** One line of text, safe inside a paragraph, a heading or a table cell: line breaks become spaces. */
export function inline(text: string): string {
  return text
    .replace(/\s*(\r\n|\r|\n|\u2028|\u2029)\s*/g, ' ')
    .replace(inlineSpecial, (character) => `\\${character}`)
    .trim();
}

/**
 * Text a person wrote over several lines, kept as lines (each ends in a hard break, blank lines
 * separate paragraphs) and escaped: no line can become a heading, a list item, a quote, a code
 * block, a thematic break or a setext underline.
 */
export function block(text: string): string {
  const lines = text.split(/\r\n|\r|\n|\u2028|\u2029/).map((line) =>
    line
      .trim()
      .replace(inlineSpecial, (character) => `\\${character}`)
      .replace(/^([-+=])/, '\\$1')
      .replace(/^(\d+)([.)])/, '$1\\$2'),
  );
  const paragraphs: string[][] = [[]];
  for (const line of lines) {
    if (line === '') {
      if ((paragraphs.at(-1) ?? []).length > 0) paragraphs.push([]);
    } else {
      paragraphs.at(-1)?.push(line);
    }
  }
  const written = paragraphs.filter((paragraph) => paragraph.length > 0);
  if (written.length === 0) return notWritten;
  return written.map((paragraph) => paragraph.join('\\\n')).join('\n\n');
}

/** A time in UTC, to the second: `2026-12-06 05:54:44 UTC`. */
function utc(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

/** `2 h 05 min`, `12 min 30 s`, `45 s`. */
function duration(seconds: number): string {
  const whole = Math.max(0, Math.floor(seconds));
  const days = Math.floor(whole / 86_400);
  const hours = Math.floor((whole % 86_400) / 3_600);
  const minutes = Math.floor((whole % 3_600) / 60);
  const rest = whole % 60;
  if (days > 0) return `${days} d ${hours} h ${String(minutes).padStart(2, '0')} min`;
  if (hours > 0) return `${hours} h ${String(minutes).padStart(2, '0')} min`;
  if (minutes > 0) return `${minutes} min ${String(rest).padStart(2, '0')} s`;
  return `${rest} s`;
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

function tableOf(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [row(headers), row(headers.map(() => '---')), ...rows.map(row)];
}

function met(value: boolean | null): string {
  return value === null ? 'not yet due' : value ? 'met' : 'missed';
}

function secondsBetween(from: string, to: string): number {
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

function summarySection(draft: PostmortemDraft): string[] {
  const { incident, roles } = draft;
  const holders = (role: string) =>
    roles
      .filter((term) => term.role === role)
      .map(
        (term) =>
          `${inline(term.subject)}${term.renouncedAt === null ? '' : ` (until ${utc(term.renouncedAt)})`}`,
      )
      .join(', ') || 'nobody';
  return tableOf(
    ['Field', 'Value'],
    [
      ['Incident', `${incident.number} (${incident.id})`],
      ['Title', inline(incident.title)],
      [
        'Status',
        `${incident.status}${incident.reopenedCount > 0 ? `, reopened ${incident.reopenedCount} time(s)` : ''}`,
      ],
      ['Severity', incident.severity],
      ['Components', incident.components.map(inline).join(', ') || 'none recorded'],
      ['Declared', `${utc(incident.declaredAt)} by ${inline(incident.declaredBy)} (${incident.source})`],
      ['Commander', holders('commander')],
      ['Communications', holders('communications')],
    ],
  );
}

function durationSection(draft: PostmortemDraft): string[] {
  const { incident } = draft;
  const { respond, resolve } = incident.targets;
  const acknowledged = incident.acknowledgedAt
    ? `Acknowledged ${utc(incident.acknowledgedAt)} by ${inline(incident.acknowledgedBy ?? 'unknown')}, ${duration(secondsBetween(incident.declaredAt, incident.acknowledgedAt))} after it was declared (target ${duration(respond.targetSeconds)}: ${met(respond.met)}).`
    : `Not acknowledged yet (target ${duration(respond.targetSeconds)}: ${met(respond.met)}).`;
  const resolved = incident.resolvedAt
    ? `Resolved ${utc(incident.resolvedAt)}: ${duration(secondsBetween(incident.declaredAt, incident.resolvedAt))} from declared to resolved (target ${duration(resolve.targetSeconds)}: ${met(resolve.met)}).`
    : `Not resolved: open for ${duration(secondsBetween(incident.declaredAt, draft.generatedAt))} when this draft was generated (target ${duration(resolve.targetSeconds)}: ${met(resolve.met)}).`;
  return [`Declared ${utc(incident.declaredAt)}.`, '', acknowledged, '', resolved];
}

function severitySection(draft: PostmortemDraft): string[] {
  const { incident, timeline } = draft;
  const changes = timeline.filter((event) => event.kind === 'severity_changed');
  const declared = timeline.find((event) => event.kind === 'declared')?.detail.severity;
  const first = typeof declared === 'string' ? declared : incident.severity;
  const targets = severityTargets[incident.severity];
  const lines = [
    `${incident.severity} (respond within ${duration(targets.respondSeconds)}, resolve within ${duration(targets.resolveSeconds)}); declared ${inline(first)}.`,
    '',
  ];
  if (changes.length === 0) return [...lines, 'No severity changes.'];
  return [
    ...lines,
    ...changes.map((event) => `- ${utc(event.at)}: ${inline(event.summary)} (by ${inline(event.actor)})`),
  ];
}

function impactSection(draft: PostmortemDraft): string[] {
  const { incident } = draft;
  return [block(incident.impact)];
}

function timelineSection(draft: PostmortemDraft): string[] {
  const lines = tableOf(
    ['Time (UTC)', 'Event', 'Source', 'By', 'What happened'],
    draft.timeline.map((event) => [
      utc(event.at),
      event.kind,
      event.source,
      inline(event.actor),
      inline(event.summary),
    ]),
  );
  if (draft.timelineLeftOut === 0) return lines;
  return [
    ...lines,
    '',
    `_${draft.timelineLeftOut} later events are not shown: read them from GET /internal/incidents/${draft.incident.id}/timeline._`,
  ];
}

function actionItemsSection(draft: PostmortemDraft): string[] {
  if (draft.actionItems.length === 0) return [notWritten];
  return tableOf(
    ['Action', 'Owner', 'Due (UTC)', 'Status'],
    draft.actionItems.map((item) => [
      inline(item.title),
      inline(item.owner),
      item.dueOn,
      item.overdue ? 'open, overdue' : item.status,
    ]),
  );
}

export function renderPostmortemMarkdown(draft: PostmortemDraft): string {
  const written = draft.postmortem;
  const bodies: Record<(typeof draftSections)[number], string[]> = {
    Summary: summarySection(draft),
    Duration: durationSection(draft),
    Severity: severitySection(draft),
    Impact: impactSection(draft),
    Timeline: timelineSection(draft),
    'Root cause': [block(written?.rootCause ?? '')],
    'What went well': [block(written?.wentWell ?? '')],
    'What went wrong': [block(written?.wentWrong ?? '')],
    'Action items': actionItemsSection(draft),
    'Lessons learned': [block(written?.lessonsLearned ?? '')],
  };
  const header = [
    `# Postmortem: incident ${draft.incident.number}: ${inline(draft.incident.title)}`,
    '',
    `_Draft generated by settledesk on ${utc(draft.generatedAt)} from the incident record and its timeline. All times are UTC._`,
  ];
  const sections = draftSections.flatMap((section) => ['', `## ${section}`, '', ...bodies[section]]);
  return `${[...header, ...sections].join('\n')}\n`;
}
