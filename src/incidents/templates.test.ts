import { describe, expect, it } from 'vitest';
import {
  componentStatuses,
  formatTime,
  messageTemplates,
  placeholders,
  placeholdersIn,
  type RenderFields,
  renderProblems,
  renderText,
  worstComponentStatus,
} from './templates.ts';

const fields: RenderFields = {
  title: 'Payouts delayed',
  impact: 'Some payouts are late',
  components: ['payouts', 'deposits'],
  status: 'identified',
  declaredAt: new Date('2026-12-06T14:05:00Z'),
  eta: new Date('2026-12-07T09:30:00Z'),
  now: new Date('2026-12-06T14:20:00Z'),
};

describe('message templates', () => {
  it('use only placeholders that exist', () => {
    for (const [name, template] of Object.entries(messageTemplates)) {
      const used = placeholdersIn(`${template.title} ${template.body}`);
      expect(
        used.filter((placeholder) => !Object.hasOwn(placeholders, placeholder)),
        name,
      ).toEqual([]);
    }
  });

  it('render the incident fields, with the date only when it is not today', () => {
    expect(renderText(messageTemplates.status_update.body, fields)).toBe(
      'Identified: Some payouts are late. Affected: payouts, deposits. Next update by 2026-12-07 09:30 UTC.',
    );
    expect(renderText('since {since}', fields)).toBe('since 14:05 UTC');
    expect(formatTime(new Date('2026-12-06T23:59:00Z'), fields.now)).toBe('23:59 UTC');
  });

  it('report unknown placeholders and empty values, and leave other braces alone', () => {
    expect(renderProblems(['{when} and {eta}', '{Title} {} {title}'], { ...fields, eta: undefined })).toEqual(
      [
        { problem: 'unknown-placeholder', placeholder: 'when' },
        { problem: 'missing-field', placeholder: 'eta' },
      ],
    );
    expect(renderProblems(['{components}'], { ...fields, components: [] })).toEqual([
      { problem: 'missing-field', placeholder: 'components' },
    ]);
    expect(renderText('{Title} {} {title}', fields)).toBe('{Title} {} Payouts delayed');
  });

  it('rank component statuses, operational when nothing is said', () => {
    expect(worstComponentStatus([])).toBe('operational');
    expect(worstComponentStatus(['partial_outage', 'degraded_performance'])).toBe('partial_outage');
    expect(worstComponentStatus([...componentStatuses].reverse())).toBe('major_outage');
  });
});
