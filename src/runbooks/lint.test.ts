import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { runbookBaseDefault } from '../ops/alert-rules.ts';
import { repositoryRoot } from './cells.ts';
import { type Finding, type LintContext, lintRunbookDirectory, templateSections } from './lint.ts';
import { buildLintContext } from './lint-context.ts';

let service: TestService;
let context: LintContext;

beforeAll(async () => {
  service = await startTestService();
  context = await buildLintContext(service.app);
});

afterAll(async () => {
  await service?.close();
});

function describeFindings(findings: readonly Finding[]): string {
  return findings
    .map((finding) => `${finding.file}:${finding.line} [${finding.rule}] ${finding.message}`)
    .join('\n');
}

describe('the runbooks in docs/runbooks', () => {
  it('follow the template and name only real commands, endpoints, metrics, links and anchors', () => {
    const findings = lintRunbookDirectory(join(repositoryRoot, 'docs', 'runbooks'), context);
    expect(describeFindings(findings)).toBe('');
  });
});

const fence = '```';

/** A runbook that passes every check; each planted fixture changes one thing in it. */
function goodRunbook(title: string, change: { cells?: string; prose?: string; drop?: string } = {}): string {
  const body: Record<string, string> = {
    Overview: 'What breaks. See [the index](README.md) and [mitigation](#immediate-mitigation).',
    Indicators: [
      `${fence}promql`,
      'max(payouts_waiting_for_network) > 0',
      'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))',
      fence,
      '',
      '`GET /v1/payouts/{id}`, `GET /health/ready` and `payout_transitions_total{transition}`.',
      change.prose ?? '',
    ].join('\n'),
    'Immediate mitigation': [
      `${fence}sh {"name":"check-mode"}`,
      'settledesk --json mode show | jq .payoutsFrozen',
      'ID=$(settledesk --json payouts list --state submitted --limit 1 | jq -r ".[0].id")',
      'curl -fsS "$SETTLEDESK_URL/v1/payouts/$ID" -H "Authorization: Bearer $SETTLEDESK_TOKEN"',
      fence,
      '',
      `${fence}sh {"name":"freeze-payouts","mutating":true}`,
      'settledesk mode freeze \\',
      '  --reason "drill"',
      fence,
      change.cells ?? '',
    ].join('\n'),
    'Root cause investigation': 'Look.',
    Resolution: 'Fix.',
    'Escalation path': '### L1 on call\n\nPage.\n\n### L2 by role\n\nPayments engineer.',
    'Post-incident actions': 'Write it up.\n\nRelated: [rollback](rollback.md).',
  };
  const sections = templateSections
    .filter((heading) => heading !== change.drop)
    .map((heading) => `## ${heading}\n\n${body[heading]}\n`);
  return `# ${title}\n\n${sections.join('\n')}`;
}

const planted: { file: string; text: string; rule: Finding['rule']; message: RegExp }[] = [
  {
    file: 'bad-command.md',
    text: goodRunbook('Bad command', {
      cells: `${fence}sh {"name":"x"}\nsettledesk payouts frobnicate\n${fence}`,
    }),
    rule: 'command',
    message: /unknown command "settledesk payouts frobnicate"/,
  },
  {
    file: 'unknown-flag.md',
    text: goodRunbook('Unknown flag', {
      cells: `${fence}sh {"name":"x"}\nsettledesk payouts list \\\n  --colour red | jq .\n${fence}`,
    }),
    rule: 'command',
    message: /unknown option --colour for "settledesk payouts list"/,
  },
  {
    file: 'hidden-command.md',
    text: goodRunbook('Command inside a substitution', {
      cells: `${fence}sh {"name":"x"}\ntest -n "$(settledesk --json payouts lisst)" && echo ok\n${fence}`,
    }),
    rule: 'command',
    message: /unknown command "settledesk payouts lisst"/,
  },
  {
    file: 'missing-option.md',
    text: goodRunbook('Missing required option', {
      cells: `${fence}sh {"name":"x","mutating":true}\nsettledesk mode freeze\n${fence}`,
    }),
    rule: 'command',
    message: /"settledesk mode freeze" is missing required option --reason/,
  },
  {
    file: 'prose-command.md',
    text: goodRunbook('Invented flag in prose', { prose: 'Run `settledesk payouts show ID --everything`.' }),
    rule: 'command',
    message: /unknown option --everything/,
  },
  {
    file: 'missing-section.md',
    text: goodRunbook('Missing section', { drop: 'Root cause investigation' }),
    rule: 'template',
    message: /missing section "## Root cause investigation"/,
  },
  {
    file: 'dead-link.md',
    text: goodRunbook('Dead link', { prose: 'See [the other one](nowhere.md).' }),
    rule: 'link',
    message: /dead link nowhere\.md: no file nowhere\.md/,
  },
  {
    file: 'dead-anchor.md',
    text: goodRunbook('Dead anchor', { prose: 'See [rollback](rollback.md#no-such-heading).' }),
    rule: 'link',
    message: /rollback\.md has no heading #no-such-heading/,
  },
  {
    file: 'unknown-metric.md',
    text: goodRunbook('Unknown metric', {
      prose: `${fence}promql\nrate(payouts_imaginary_total[5m]) > 0\n${fence}`,
    }),
    rule: 'metric',
    message: /unknown metric payouts_imaginary_total/,
  },
  {
    file: 'unknown-metric-span.md',
    text: goodRunbook('Unknown metric in prose', { prose: 'Watch `payouts_imaginary_seconds{path}`.' }),
    rule: 'metric',
    message: /unknown metric payouts_imaginary_seconds/,
  },
  {
    file: 'unknown-endpoint.md',
    text: goodRunbook('Unknown endpoint', {
      cells: `${fence}sh {"name":"x"}\ncurl -fsS "$SETTLEDESK_URL/v1/imaginary/things"\n${fence}`,
    }),
    rule: 'endpoint',
    message: /no route \/v1\/imaginary\/things/,
  },
  {
    file: 'wrong-method.md',
    text: goodRunbook('Wrong method', { prose: 'Then `DELETE /v1/payouts/{id}`.' }),
    rule: 'endpoint',
    message: /no route DELETE \/v1\/payouts\/\{id\}/,
  },
  {
    file: 'unnamed-shell.md',
    text: goodRunbook('Unnamed shell block', { cells: `${fence}sh\necho hi\n${fence}` }),
    rule: 'unnamed-shell',
    message: /shell block without/,
  },
];

describe('the runbook linter', () => {
  let directory: string;

  beforeAll(() => {
    directory = mkdtempSync(join(tmpdir(), 'settledesk-runbook-lint-'));
    const files = ['good.md', 'rollback.md', ...planted.map((fixture) => fixture.file)];
    writeFileSync(
      join(directory, 'README.md'),
      `# Index\n\n${files.map((file) => `- [${file}](${file})`).join('\n')}\n`,
    );
    writeFileSync(join(directory, 'good.md'), goodRunbook('Good'));
    writeFileSync(join(directory, 'rollback.md'), goodRunbook('Rollback'));
    for (const fixture of planted) writeFileSync(join(directory, fixture.file), fixture.text);
  });

  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  function lintFixtures(alerts = ''): Finding[] {
    return lintRunbookDirectory(directory, {
      ...context,
      alertRules: { file: join(directory, 'alerts.yml'), text: alerts },
      root: directory,
    });
  }

  it('reports nothing on a runbook that follows every rule', () => {
    const findings = lintFixtures().filter((finding) =>
      ['good.md', 'rollback.md', 'README.md'].includes(finding.file),
    );
    expect(describeFindings(findings)).toBe('');
  });

  it.each(planted)('reports the planted fault in $file, and only it', (fixture) => {
    const findings = lintFixtures().filter((finding) => finding.file === fixture.file);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({
      rule: fixture.rule,
      message: expect.stringMatching(fixture.message),
    });
  });

  it('reports an alert whose runbook_url is relative, on another base, or names a missing runbook or heading', () => {
    const alerts = [
      'groups:',
      '  - name: g',
      '    rules:',
      '      - alert: Fine',
      '        annotations:',
      `          runbook_url: ${runbookBaseDefault}docs/runbooks/good.md#indicators`,
      '      - alert: NoHeading',
      '        annotations:',
      `          runbook_url: ${runbookBaseDefault}docs/runbooks/good.md#nothing-here`,
      '      - alert: NoFile',
      '        annotations:',
      `          runbook_url: '${runbookBaseDefault}docs/runbooks/absent.md#indicators'`,
      '      - alert: Relative',
      '        annotations:',
      '          runbook_url: docs/runbooks/good.md#indicators',
      '      - alert: OtherBase',
      '        annotations:',
      '          runbook_url: https://example.com/blob/main/docs/runbooks/good.md#indicators',
      '      - alert: OutsideRunbooks',
      '        annotations:',
      `          runbook_url: ${runbookBaseDefault}README.md#indicators`,
    ].join('\n');
    const findings = lintFixtures(alerts).filter((finding) => finding.rule === 'alert-link');
    expect(findings.map((finding) => [finding.line, finding.message])).toEqual([
      [9, 'NoHeading: dead link good.md#nothing-here: good.md has no heading #nothing-here'],
      [12, 'NoFile: dead link absent.md#indicators: no file absent.md'],
      [
        15,
        `Relative: runbook_url docs/runbooks/good.md#indicators is not absolute on the runbook base ${runbookBaseDefault}`,
      ],
      [
        18,
        `OtherBase: runbook_url https://example.com/blob/main/docs/runbooks/good.md#indicators is not absolute on the runbook base ${runbookBaseDefault}`,
      ],
      [
        21,
        `OutsideRunbooks: runbook_url ${runbookBaseDefault}README.md#indicators is not under docs/runbooks/`,
      ],
    ]);
  });

  it('reports a runbook the index does not list', () => {
    writeFileSync(join(directory, 'unlisted.md'), goodRunbook('Unlisted'));
    try {
      const findings = lintFixtures().filter((finding) => finding.rule === 'index');
      expect(findings.map((finding) => finding.message)).toEqual(['README.md does not list unlisted.md']);
    } finally {
      rmSync(join(directory, 'unlisted.md'));
    }
  });
});
