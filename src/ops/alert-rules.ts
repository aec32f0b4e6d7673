import { OperatingError } from '../platform/errors.ts';

/**
 * Every `runbook_url` in ops/prometheus/alerts.yml is this base followed by
 * `docs/runbooks/<runbook>.md#<heading>`: an absolute address a pager can open. The repository's
 * base is on the reserved `.invalid` domain because the project has no public address; Prometheus
 * rule files have no variables, so each deployment renders the file with the address where it
 * browses its runbooks through `settledesk alerts render --runbook-base URL` (ops/README.md). One
 * base for every alert keeps that rewrite a prefix swap.
 */
export const runbookBaseDefault = 'https://settledesk.invalid/';
export const runbookDirectoryPath = 'docs/runbooks/';

/**
 * http(s), a host, an optional path, no query or fragment, and nothing Prometheus' annotation
 * templating or YAML would read as syntax (`{`, quotes, `#`, spaces).
 */
const basePattern = /^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?(?:\/[A-Za-z0-9._~%!$&()*+,;=:@/-]*)?$/;
const runbookUrlLine = /^(\s*runbook_url:\s*)(['"]?)([^'"\s]*)\2\s*$/;
const alertLine = /^\s*-\s*alert:\s*['"]?([A-Za-z0-9_:]+)/;

/** The base as written in rules: validated, ending with one `/`. */
export function normaliseRunbookBase(base: string): string {
  const trimmed = base.trim();
  if (!basePattern.test(trimmed))
    throw new OperatingError(
      `runbook base ${JSON.stringify(base)} must be an absolute http:// or https:// URL without query, fragment, quotes or braces`,
    );
  return trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/**
 * The repository path a `runbook_url` points to (`docs/runbooks/x.md#indicators`), or undefined
 * when it does not start with `base` (relative, or built from another base).
 */
export function runbookPathOf(url: string, base: string = runbookBaseDefault): string | undefined {
  return url.startsWith(base) ? url.slice(base.length) : undefined;
}

/**
 * The rules text with every `runbook_url` moved from the default base to `base`; everything else,
 * comments and layout included, is left as it is. A `runbook_url` that is not on the default base
 * is refused, so a rendered file never mixes bases.
 */
export function renderAlertRules(text: string, base: string): string {
  const target = normaliseRunbookBase(base);
  let alert = '(unnamed)';
  const lines = text.split('\n').map((line, index) => {
    alert = alertLine.exec(line)?.[1] ?? alert;
    const match = runbookUrlLine.exec(line);
    if (!match) return line;
    const path = runbookPathOf(match[3]!);
    if (path === undefined || !path.startsWith(runbookDirectoryPath))
      throw new OperatingError(
        `line ${index + 1}: ${alert}'s runbook_url ${match[3]} is not ${runbookBaseDefault}${runbookDirectoryPath}…`,
      );
    return `${match[1]}${target}${path}`;
  });
  return lines.join('\n');
}
