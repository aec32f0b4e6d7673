import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IncidentRow } from './data.ts';
import type { ActionItemView, PostmortemDraft } from './postmortem.ts';
import { block, draftSections, inline, notWritten, renderPostmortemMarkdown } from './postmortem-markdown.ts';
import { incidentView, type TimelineEventView } from './service.ts';

const declaredAt = new Date('2026-03-01T10:00:00.000Z');
const at = (minutes: number) => new Date(declaredAt.getTime() + minutes * 60_000).toISOString();

function incidentRow(changes: Partial<IncidentRow> = {}): IncidentRow {
  return {
    id: '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17',
    number: 12n,
    title: 'payouts stuck',
    severity: 'P1',
    status: 'resolved',
    statusReason: 'a person declared the impact over',
    components: ['payouts', 'horizon'],
    impact: 'Payouts to 40 merchants were delayed.',
    source: 'person',
    declaredBy: 'alice',
    declaredAt,
    acknowledgedAt: new Date(at(2)),
    acknowledgedBy: 'alice',
    resolvedAt: new Date(at(125)),
    reopenedCount: 0,
    updatedAt: new Date(at(125)),
    ...changes,
  };
}

let eventId = 0;
function event(
  minutes: number,
  kind: TimelineEventView['kind'],
  summary: string,
  detail = {},
): TimelineEventView {
  eventId += 1;
  return { id: String(eventId), at: at(minutes), kind, source: 'person', actor: 'alice', summary, detail };
}

function item(changes: Partial<ActionItemView> = {}): ActionItemView {
  return {
    id: '9d1c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17',
    incidentId: '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17',
    title: 'alert on ingestion lag',
    owner: 'bob',
    dueOn: '2026-03-10',
    status: 'open',
    statusReason: 'added',
    overdue: false,
    createdBy: 'alice',
    createdAt: at(130),
    updatedAt: at(130),
    ...changes,
  };
}

function draft(changes: Partial<PostmortemDraft> = {}, row = incidentRow()): PostmortemDraft {
  return {
    incident: incidentView(row, new Date(at(200))),
    roles: [{ role: 'commander', subject: 'alice', assumedAt: at(1), renouncedAt: null }],
    timeline: [
      event(0, 'declared', 'declared P2: payouts stuck', { severity: 'P2' }),
      event(20, 'severity_changed', 'P2 → P1: more merchants', { from: 'P2', to: 'P1' }),
      event(125, 'status_changed', 'investigating → resolved'),
    ],
    timelineLeftOut: 0,
    postmortem: {
      incidentId: '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17',
      rootCause: 'A stale cache.',
      wentWell: 'Paging worked.',
      wentWrong: 'Slow to find the cause.',
      lessonsLearned: 'Watch the cache.',
      createdAt: at(125),
      updatedBy: 'alice',
      updatedAt: at(150),
    },
    actionItems: [item()],
    generatedAt: at(200),
    ...changes,
  };
}

/** Each `## ` section's body, by heading. */
function sections(markdown: string): Map<string, string> {
  const parts = markdown.split(/^## /m).slice(1);
  return new Map(
    parts.map((part) => [part.slice(0, part.indexOf('\n')), part.slice(part.indexOf('\n') + 1).trim()]),
  );
}

function section(markdown: string, heading: string): string {
  return sections(markdown).get(heading) ?? '';
}

describe('the postmortem draft in Markdown', () => {
  it('has every section of the template, in order, under a title naming the incident', () => {
    const markdown = renderPostmortemMarkdown(draft());
    expect(markdown.split('\n')[0]).toBe('# Postmortem: incident 12: payouts stuck');
    expect([...sections(markdown).keys()]).toEqual([...draftSections]);
  });

  it('Summary: the title, status, severity, components, who declared it and who held the roles', () => {
    const text = section(renderPostmortemMarkdown(draft()), 'Summary');
    expect(text).toContain('| Title | payouts stuck |');
    expect(text).toContain('| Severity | P1 |');
    expect(text).toContain('| Components | payouts, horizon |');
    expect(text).toContain('| Declared | 2026-03-01 10:00:00 UTC by alice (person) |');
    expect(text).toContain('| Commander | alice |');
    expect(text).toContain('| Communications | nobody |');
  });

  it('Duration: declared, acknowledged and resolved in UTC, with each target met or missed', () => {
    const text = section(renderPostmortemMarkdown(draft()), 'Duration');
    expect(text).toContain('Declared 2026-03-01 10:00:00 UTC.');
    expect(text).toContain('2 min 00 s after it was declared (target 15 min 00 s: met)');
    expect(text).toContain(
      'Resolved 2026-03-01 12:05:00 UTC: 2 h 05 min from declared to resolved (target 4 h 00 min: met)',
    );
    const open = draft({}, incidentRow({ status: 'monitoring', resolvedAt: null, acknowledgedAt: null }));
    const openText = section(renderPostmortemMarkdown(open), 'Duration');
    expect(openText).toContain('Not acknowledged yet (target 15 min 00 s: missed)');
    expect(openText).toContain(
      'Not resolved: open for 3 h 20 min when this draft was generated (target 4 h 00 min: not yet due)',
    );
  });

  it('Severity: the current one with its targets, the one declared, and every change with its time', () => {
    const text = section(renderPostmortemMarkdown(draft()), 'Severity');
    expect(text).toContain('P1 (respond within 15 min 00 s, resolve within 4 h 00 min); declared P2.');
    expect(text).toContain('- 2026-03-01 10:20:00 UTC: P2 → P1: more merchants (by alice)');
    const steady = draft({ timeline: [event(0, 'declared', 'declared P1', { severity: 'P1' })] });
    expect(section(renderPostmortemMarkdown(steady), 'Severity')).toContain('No severity changes.');
  });

  it('Impact: the impact statement', () => {
    expect(section(renderPostmortemMarkdown(draft()), 'Impact')).toBe(
      'Payouts to 40 merchants were delayed.',
    );
  });

  it('Timeline: every event, oldest first, with its UTC time, kind, source, actor and summary', () => {
    const rows = section(renderPostmortemMarkdown(draft()), 'Timeline').split('\n');
    expect(rows).toEqual([
      '| Time (UTC) | Event | Source | By | What happened |',
      '| --- | --- | --- | --- | --- |',
      '| 2026-03-01 10:00:00 UTC | declared | person | alice | declared P2: payouts stuck |',
      '| 2026-03-01 10:20:00 UTC | severity_changed | person | alice | P2 → P1: more merchants |',
      '| 2026-03-01 12:05:00 UTC | status_changed | person | alice | investigating → resolved |',
    ]);
    const long = renderPostmortemMarkdown(draft({ timelineLeftOut: 7 }));
    expect(section(long, 'Timeline')).toContain('_7 later events are not shown');
  });

  it('Root cause, What went well, What went wrong, Lessons learned: what people wrote', () => {
    const markdown = renderPostmortemMarkdown(draft());
    expect(section(markdown, 'Root cause')).toBe('A stale cache.');
    expect(section(markdown, 'What went well')).toBe('Paging worked.');
    expect(section(markdown, 'What went wrong')).toBe('Slow to find the cause.');
    expect(section(markdown, 'Lessons learned')).toBe('Watch the cache.');
  });

  it('Action items: each with its owner, due day and status, an open one past its day marked overdue', () => {
    const items = [
      item(),
      item({ title: 'fix the cache', owner: 'carol', dueOn: '2026-03-02', overdue: true }),
    ];
    expect(
      section(renderPostmortemMarkdown(draft({ actionItems: items })), 'Action items').split('\n'),
    ).toEqual([
      '| Action | Owner | Due (UTC) | Status |',
      '| --- | --- | --- | --- |',
      '| alert on ingestion lag | bob | 2026-03-10 | open |',
      '| fix the cache | carol | 2026-03-02 | open, overdue |',
    ]);
  });

  it('says "Not written yet." in every section nobody wrote, instead of leaving it out', () => {
    const empty = draft({ postmortem: null, actionItems: [] }, incidentRow({ impact: '' }));
    const markdown = renderPostmortemMarkdown(empty);
    expect([...sections(markdown).keys()]).toEqual([...draftSections]);
    for (const heading of [
      'Impact',
      'Root cause',
      'What went well',
      'What went wrong',
      'Action items',
      'Lessons learned',
    ]) {
      expect(section(markdown, heading), heading).toBe(notWritten);
    }
    const blank = draft({
      postmortem: {
        ...(draft().postmortem as NonNullable<PostmortemDraft['postmortem']>),
        rootCause: ' \n\n ',
      },
    });
    expect(section(renderPostmortemMarkdown(blank), 'Root cause')).toBe(notWritten);
  });

  it('keeps several lines and paragraphs a person wrote, each line escaped', () => {
    expect(block('First line\nsecond line\n\n\n# not a heading\n- not a list\n1. not a list')).toBe(
      'First line\\\nsecond line\n\n\\# not a heading\\\n\\- not a list\\\n1\\. not a list',
    );
    expect(inline('a | b\n## c')).toBe('a \\| b \\#\\# c');
  });
});

/** `|` not escaped by a backslash: the cell separators of a table row. */
function separators(line: string): number {
  return [...line.matchAll(/(?<!\\)(?:\\\\)*\|/g)].length;
}

/** What a document's structure is: its headings, and for each table line the number of cells. */
function structureProblems(markdown: string): string[] {
  const problems: string[] = [];
  const lines = markdown.split('\n');
  const headings = lines.filter((line) => /^ {0,3}#{1,6}(\s|$)/.test(line));
  const expected = draftSections.map((heading) => `## ${heading}`);
  if (JSON.stringify(headings.slice(1)) !== JSON.stringify(expected))
    problems.push(`headings: ${headings.join(' / ')}`);
  let columns: number | undefined;
  for (const line of lines) {
    if (/^ {0,3}(`{3,}|~{3,})/.test(line)) problems.push(`a fence: ${line}`);
    if (/^ {0,3}(=+|-+|\*+|_+)\s*$/.test(line))
      problems.push(`a setext underline or thematic break: ${line}`);
    if (/^ {0,3}[>]/.test(line) || /^( {4}|\t)/.test(line))
      problems.push(`a quote or indented code: ${line}`);
    if (/^ {0,3}([-+*]|\d{1,9}[.)])(\s|$)/.test(line) && !/^- \d{4}-\d{2}-\d{2} /.test(line))
      problems.push(`a list item: ${line}`);
    if (/(?<!\\)(?:\\\\)*</.test(line)) problems.push(`raw HTML: ${line}`);
    if (line.startsWith('|')) {
      columns ??= separators(line);
      if (separators(line) !== columns) problems.push(`a table row with other cells: ${line}`);
    } else {
      columns = undefined;
    }
  }
  return problems;
}

describe('hostile text in the draft', () => {
  const hostile = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom(
      'a | b',
      '\n## Root cause\nfake',
      '```\ncode',
      '~~~',
      '---',
      '===',
      '> quoted',
      '<script>alert(1)</script>',
      '    indented',
      '1. item',
      '- item',
      '* item',
      '\\',
      'tail\\',
      '\\|',
      '[link](http://x)',
      'line\r\nbreak',
      '# heading',
      '&amp;',
    ),
    fc
      .array(fc.constantFrom('|', '\n', '#', '`', '-', '>', '<', '\\', ' ', 'x', '=', '1.', '*', '\r'), {
        maxLength: 12,
      })
      .map((parts) => parts.join('')),
  );

  it('cannot add a heading, end a table row, open a code block, a list, a quote or HTML', () => {
    fc.assert(
      fc.property(fc.array(hostile, { minLength: 10, maxLength: 10 }), (texts) => {
        const [title, actor, summary, owner, itemTitle, rootCause, wentWell, impact, component, subject] =
          texts as string[];
        const row = incidentRow({
          title: title ?? '',
          impact: impact ?? '',
          components: [component ?? ''],
          declaredBy: actor ?? '',
        });
        const markdown = renderPostmortemMarkdown(
          draft(
            {
              roles: [{ role: 'commander', subject: subject ?? '', assumedAt: at(1), renouncedAt: at(3) }],
              timeline: [
                { ...event(0, 'declared', summary ?? '', { severity: title }), actor: actor ?? '' },
                { ...event(5, 'severity_changed', summary ?? ''), actor: actor ?? '' },
                { ...event(6, 'alert_firing', summary ?? ''), source: 'alertmanager' },
              ],
              actionItems: [item({ title: itemTitle ?? '', owner: owner ?? '' })],
              postmortem: {
                ...(draft().postmortem as NonNullable<PostmortemDraft['postmortem']>),
                rootCause: rootCause ?? '',
                wentWell: wentWell ?? '',
              },
            },
            row,
          ),
        );
        expect(structureProblems(markdown)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('the structure check finds a heading, a broken row and a fence when text is not escaped', () => {
    const broken = renderPostmortemMarkdown(draft()).replace(
      '| declared P2: payouts stuck |',
      '| a | b |\n```\n## Fake',
    );
    expect(structureProblems(broken)).toEqual([
      expect.stringMatching(/^headings: /),
      'a table row with other cells: | 2026-03-01 10:00:00 UTC | declared | person | alice | a | b |',
      'a fence: ```',
    ]);
  });
});
