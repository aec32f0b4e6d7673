import { describe, expect, it } from 'vitest';
import { normaliseRunbookBase, renderAlertRules, runbookBaseDefault, runbookPathOf } from './alert-rules.ts';

const rules = [
  'groups:',
  '  - name: g',
  '    rules:',
  '      # A comment stays.',
  '      - alert: First',
  '        annotations:',
  `          runbook_url: ${runbookBaseDefault}docs/runbooks/api-down.md#indicators`,
  '      - alert: Second',
  '        annotations:',
  `          runbook_url: '${runbookBaseDefault}docs/runbooks/high-latency.md#indicators'`,
  '',
].join('\n');

describe('alert rules rendering', () => {
  it('moves every runbook_url onto the given base and leaves every other line as it was', () => {
    const rendered = renderAlertRules(rules, 'https://git.example.com/acme/settledesk/-/blob/v2');
    expect(rendered.split('\n')).toEqual(
      rules
        .split('\n')
        .map((line) =>
          line.includes('runbook_url')
            ? line
                .replace(runbookBaseDefault, 'https://git.example.com/acme/settledesk/-/blob/v2/')
                .replace(/'/g, '')
            : line,
        ),
    );
  });

  it('refuses a rules file with a relative runbook_url or one on another base, naming the alert', () => {
    const relative = rules.replace(`${runbookBaseDefault}docs/runbooks/api-down`, 'docs/runbooks/api-down');
    expect(() => renderAlertRules(relative, 'https://example.com/')).toThrow(
      /line 7: First's runbook_url docs\/runbooks\/api-down.md#indicators is not/,
    );
    const other = rules.replace(`'${runbookBaseDefault}`, "'https://example.com/");
    expect(() => renderAlertRules(other, 'https://example.com/')).toThrow(/line 10: Second's/);
  });

  it('refuses a base that is relative, has a query or fragment, or would be read as a template', () => {
    for (const base of [
      'docs/',
      '//github.com/x/',
      'ftp://example.com/',
      'https://example.com/?ref=main',
      'https://example.com/#top',
      'https://example.com/{{ $labels.instance }}/',
      "https://example.com/o'clock/",
      'https://exa mple.com/',
    ]) {
      expect(() => normaliseRunbookBase(base), base).toThrow(/must be an absolute http/);
    }
    expect(normaliseRunbookBase(' https://example.com:8443/a/b ')).toBe('https://example.com:8443/a/b/');
  });

  it('strips only its own base from a runbook_url', () => {
    expect(runbookPathOf(`${runbookBaseDefault}docs/runbooks/a.md#b`)).toBe('docs/runbooks/a.md#b');
    expect(runbookPathOf('docs/runbooks/a.md#b')).toBeUndefined();
    expect(runbookPathOf('https://example.com/docs/runbooks/a.md#b')).toBeUndefined();
  });
});
