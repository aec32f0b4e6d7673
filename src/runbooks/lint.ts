import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { runbookBaseDefault, runbookDirectoryPath, runbookPathOf } from '../ops/alert-rules.ts';
import { metricInCodeSpan, promqlMetricNames } from '../ops/promql-names.ts';
import { shellLanguages } from './cells.ts';
import { settledeskCommands } from './commands.ts';
import { endpointMentions, type Route, routeExists } from './endpoints.ts';
import { parseRunbook, type Runbook, RunbookError } from './parse.ts';

export type Rule =
  | 'parse'
  | 'template'
  | 'related'
  | 'unnamed-shell'
  | 'command'
  | 'endpoint'
  | 'metric'
  | 'alert-link'
  | 'link'
  | 'index';

export type Finding = { file: string; line: number; rule: Rule; message: string };

export type LintContext = {
  /** The real CLI, from `buildProgram()`. */
  program: Command;
  /** The service's routes, from the built Fastify app. */
  routes: readonly Route[];
  /** Every series name settledesk and Prometheus expose, and recording rules. */
  metrics: ReadonlySet<string>;
  /** Alerting rules whose `runbook_url`s must resolve; undefined when the file is missing. */
  alertRules: { file: string; text: string } | undefined;
  /** Paths in findings are shown relative to this. */
  root: string;
};

export const templateSections = [
  'Overview',
  'Indicators',
  'Immediate mitigation',
  'Root cause investigation',
  'Resolution',
  'Escalation path',
  'Post-incident actions',
] as const;

/** The index is not a runbook; everything else, the on-call overview included, follows the template. */
export const templateExempt: ReadonlySet<string> = new Set(['README.md']);
export const indexFile = 'README.md';

export function lintRunbookDirectory(directory: string, context: LintContext): Finding[] {
  const findings: Finding[] = [];
  const files = readdirSync(directory)
    .filter((name) => name.endsWith('.md'))
    .sort();
  const parsed = new Map<string, Runbook>();
  for (const name of files) {
    const path = join(directory, name);
    try {
      parsed.set(name, parseRunbook(path));
    } catch (error) {
      if (!(error instanceof RunbookError)) throw error;
      findings.push({
        file: show(context, path),
        line: lineOf(error.message),
        rule: 'parse',
        message: error.message,
      });
    }
  }
  const documents = new DocumentCache(parsed, directory);
  for (const [name, runbook] of parsed) {
    const report = reporter(findings, show(context, runbook.file));
    if (!templateExempt.has(name)) checkTemplate(runbook, name, report);
    checkCells(runbook, context, report, { requireNames: !templateExempt.has(name) });
    checkProse(runbook, context, report);
    checkLinks(runbook, documents, report);
  }
  const index = parsed.get(indexFile);
  if (index) checkIndex(index, files, reporter(findings, show(context, index.file)));
  else
    findings.push({
      file: show(context, join(directory, indexFile)),
      line: 1,
      rule: 'index',
      message: 'no index',
    });
  findings.push(...checkAlertLinks(context, directory, documents));
  return findings;
}

type Report = (line: number, rule: Rule, message: string) => void;

function reporter(findings: Finding[], file: string): Report {
  return (line, rule, message) => findings.push({ file, line, rule, message });
}

function show(context: LintContext, path: string): string {
  return relative(context.root, path) || path;
}

function lineOf(message: string): number {
  return Number(/:(\d+):/.exec(message)?.[1] ?? 1);
}

function checkTemplate(runbook: Runbook, name: string, report: Report): void {
  const first = runbook.sections[0];
  if (first?.level !== 1) report(first?.line ?? 1, 'template', 'the first heading must be the level-1 title');
  const level2 = runbook.sections.filter((section) => section.level === 2);
  const headings = level2.map((section) => section.heading);
  for (const wanted of templateSections) {
    if (!headings.includes(wanted)) report(1, 'template', `missing section "## ${wanted}"`);
  }
  const known = level2.filter((section) => (templateSections as readonly string[]).includes(section.heading));
  known.forEach((section, index) => {
    const expected = templateSections.filter((wanted) => headings.includes(wanted))[index];
    if (section.heading !== expected)
      report(
        section.line,
        'template',
        `"## ${section.heading}" is out of order (template: ${templateSections.join(', ')})`,
      );
  });
  for (const section of level2) {
    if (!(templateSections as readonly string[]).includes(section.heading))
      report(
        section.line,
        'template',
        `"## ${section.heading}" is not a template section; make it a ### subsection`,
      );
  }
  checkEscalation(runbook, report);
  if (runbook.cells.length === 0) report(1, 'template', 'no named code cells');
  if (
    name !== 'rollback.md' &&
    !runbook.prose.some((line) => /\]\((?:\.\/)?rollback\.md[)#]/.test(line.text))
  )
    report(runbook.prose.at(-1)?.line ?? 1, 'related', 'no link to the rollback runbook (rollback.md)');
}

function checkEscalation(runbook: Runbook, report: Report): void {
  const start = runbook.sections.findIndex(
    (section) => section.level === 2 && section.heading === 'Escalation path',
  );
  if (start === -1) return;
  const inside: string[] = [];
  for (const section of runbook.sections.slice(start + 1)) {
    if (section.level <= 2) break;
    if (section.level === 3) inside.push(section.heading);
  }
  for (const level of ['L1', 'L2']) {
    if (!inside.some((heading) => heading.startsWith(level)))
      report(
        runbook.sections[start]!.line,
        'template',
        `"## Escalation path" has no "### ${level} …" subsection`,
      );
  }
}

function checkCells(
  runbook: Runbook,
  context: LintContext,
  report: Report,
  options: { requireNames: boolean },
): void {
  const shellBlocks = [
    ...runbook.cells.filter((cell) => shellLanguages.has(cell.language)),
    ...runbook.blocks.filter((block) => shellLanguages.has(block.language)),
  ];
  for (const block of runbook.blocks) {
    if (options.requireNames && shellLanguages.has(block.language))
      report(block.line, 'unnamed-shell', `shell block without {"name": …}: make it a named cell`);
    if (block.language === 'promql') checkPromql(block.code, block.line + 1, context, report);
  }
  for (const block of shellBlocks) {
    for (const use of settledeskCommands(context.program, block.code, block.line + 1, { prose: false })) {
      if (use.problem) report(use.line, 'command', `settledesk ${wordsText(use.words)}: ${use.problem}`);
    }
    const lines = block.code.split('\n');
    for (const [offset, text] of lines.entries())
      checkEndpoints(text, block.line + 1 + offset, context, report);
  }
}

function wordsText(words: readonly { text: string }[]): string {
  return words.map((word) => word.text).join(' ');
}

function checkPromql(code: string, firstLine: number, context: LintContext, report: Report): void {
  code.split('\n').forEach((text, offset) => {
    for (const name of promqlMetricNames(text)) {
      if (!context.metrics.has(name)) report(firstLine + offset, 'metric', `unknown metric ${name}`);
    }
  });
}

function checkEndpoints(text: string, line: number, context: LintContext, report: Report): void {
  for (const mention of endpointMentions(text)) {
    if (!routeExists(context.routes, mention))
      report(line, 'endpoint', `no route ${mention.method ? `${mention.method} ` : ''}${mention.path}`);
  }
}

function codeSpans(text: string): string[] {
  return [...text.matchAll(/(`+)(.+?)\1/g)].map((match) => match[2]!.trim());
}

function checkProse(runbook: Runbook, context: LintContext, report: Report): void {
  for (const { text, line } of runbook.prose) {
    checkEndpoints(text, line, context, report);
    for (const span of codeSpans(text)) {
      if (/(?:^|[\s"'(])settledesk\s+[a-z-]/.test(span)) {
        for (const use of settledeskCommands(context.program, span, line, { prose: true })) {
          if (use.problem) report(line, 'command', `settledesk ${wordsText(use.words)}: ${use.problem}`);
        }
      }
      const metric = metricInCodeSpan(span);
      if (metric !== undefined && !context.metrics.has(metric))
        report(line, 'metric', `unknown metric ${metric}`);
    }
  }
}

/** Parsed Markdown files by absolute path, so a link's anchor can be checked against its target. */
class DocumentCache {
  private readonly byPath = new Map<string, Runbook | undefined>();

  constructor(parsed: ReadonlyMap<string, Runbook>, directory: string) {
    for (const [name, runbook] of parsed) this.byPath.set(resolve(directory, name), runbook);
  }

  get(path: string): Runbook | undefined {
    const key = resolve(path);
    if (!this.byPath.has(key)) {
      let document: Runbook | undefined;
      try {
        document = parseRunbook(readFileSync(key, 'utf8'), key);
      } catch {
        document = undefined;
      }
      this.byPath.set(key, document);
    }
    return this.byPath.get(key);
  }
}

function linkTargets(text: string): string[] {
  const withoutCode = text.replace(/(`+).+?\1/g, '');
  const inline = [...withoutCode.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map(
    (m) => m[1]!,
  );
  const reference = /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(withoutCode)?.[1];
  return reference === undefined ? inline : [...inline, reference];
}

function checkLinks(runbook: Runbook, documents: DocumentCache, report: Report): void {
  for (const { text, line } of runbook.prose) {
    for (const target of linkTargets(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const problem = checkLink(runbook.file, target, documents);
      if (problem) report(line, 'link', problem);
    }
  }
}

function checkLink(from: string, target: string, documents: DocumentCache): string | undefined {
  const hash = target.indexOf('#');
  const pathPart = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const path = pathPart === '' ? from : resolve(dirname(from), pathPart);
  if (!existsSync(path)) return `dead link ${target}: no file ${pathPart}`;
  if (anchor === undefined || anchor === '') return undefined;
  if (statSync(path).isDirectory() || !path.endsWith('.md'))
    return `link ${target}: anchor on a file that is not Markdown`;
  const document = documents.get(path);
  if (!document) return `link ${target}: ${pathPart} cannot be parsed`;
  if (document.sections.some((section) => section.anchor === anchor)) return undefined;
  return `dead link ${target}: ${basename(path)} has no heading #${anchor}`;
}

function checkIndex(index: Runbook, files: readonly string[], report: Report): void {
  const linked = new Set(
    index.prose.flatMap((line) => linkTargets(line.text)).map((target) => target.split('#')[0]),
  );
  for (const name of files) {
    if (name !== indexFile && !linked.has(name) && !linked.has(`./${name}`))
      report(1, 'index', `${indexFile} does not list ${name}`);
  }
}

function checkAlertLinks(context: LintContext, directory: string, documents: DocumentCache): Finding[] {
  const rules = context.alertRules;
  if (rules === undefined)
    return [
      { file: 'ops/prometheus/alerts.yml', line: 1, rule: 'alert-link', message: 'no alerting rules file' },
    ];
  const findings: Finding[] = [];
  const report = reporter(findings, show(context, rules.file));
  let alert = '(unnamed)';
  rules.text.split('\n').forEach((text, offset) => {
    const name = /^\s*-\s*alert:\s*['"]?([A-Za-z0-9_:]+)/.exec(text);
    if (name) alert = name[1]!;
    const url = /^\s*runbook_url:\s*['"]?([^'"\s]+)/.exec(text)?.[1];
    if (url === undefined) return;
    const path = runbookPathOf(url);
    if (path === undefined) {
      report(
        offset + 1,
        'alert-link',
        `${alert}: runbook_url ${url} is not absolute on the runbook base ${runbookBaseDefault}`,
      );
      return;
    }
    if (!path.startsWith(runbookDirectoryPath)) {
      report(offset + 1, 'alert-link', `${alert}: runbook_url ${url} is not under ${runbookDirectoryPath}`);
      return;
    }
    const target = path.slice(runbookDirectoryPath.length);
    if (!target.includes('#'))
      report(offset + 1, 'alert-link', `${alert}: runbook_url ${url} names no heading`);
    const problem = checkLink(join(directory, indexFile), target, documents);
    if (problem) report(offset + 1, 'alert-link', `${alert}: ${problem}`);
  });
  return findings;
}
