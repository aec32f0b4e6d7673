import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/**
 * Tidy rules: checks that read the source tree as text, after TigerBeetle's `tidy.zig`. Each rule
 * guards a policy that review alone kept missing. A rule names the only files allowed to do what
 * it forbids, each with its reason; an exemption list longer than a few entries means the rule or
 * the code is wrong.
 */
export type TidyRule = {
  name: string;
  /** Matched against each line of a non-test source file under `src/`. */
  pattern: RegExp;
  message: string;
  /** Paths relative to the repository root (a folder ends with `/`), each with why it may. */
  allowed: readonly { path: string; reason: string }[];
};

export type Violation = { file: string; line: number; rule: string; text: string };

export const tidyRules: readonly TidyRule[] = [
  {
    name: 'transaction-policy',
    pattern: /\.begin\(/,
    message:
      'open transactions with withTransaction (src/platform/db/transaction.ts): it retries 40001/40P01 with jittered backoff and counts them',
    allowed: [{ path: 'src/platform/db/', reason: 'withTransaction itself opens the transaction' }],
  },
  {
    name: 'payout-state-groups',
    // Two different payout states side by side: a list of states written out again.
    pattern:
      /'(accepted|submitted|settled|failed|manual_review)'\s*[,|]\s*'(?!\1')(accepted|submitted|settled|failed|manual_review)'/,
    message:
      'name a group of payout states through src/payouts/states.ts (openStates, engineStates, …), not a second list',
    allowed: [
      { path: 'src/payouts/states.ts', reason: 'the state machine defines every group of its states' },
    ],
  },
  {
    name: 'one-uuid-pattern',
    // A uuid regex written out, or JSON Schema's uuid format alone (it accepts `urn:uuid:…`).
    pattern: /\{8\}-\[0-9a-f|format: 'uuid'/i,
    message: 'validate ids with isUuid or Uuid() from src/platform/ids.ts, the one strict definition',
    allowed: [{ path: 'src/platform/ids.ts', reason: 'the one definition of an id' }],
  },
  {
    name: 'one-stellar-precision',
    pattern: /\b10_?000_?000n\b|precision: 7\b|\b\w*(Decimals|Precision|precision)\s*=\s*7\b|, 7\)/,
    message:
      'take the 7-decimal Stellar precision from src/stellar/units.ts (stellarDecimals, stroopsPerUnit)',
    allowed: [{ path: 'src/stellar/units.ts', reason: 'the one copy of the network fact' }],
  },
  {
    name: 'assert-invariants',
    pattern: /throw new Error\(/,
    message:
      'a broken invariant is assert(…) (src/platform/assert.ts); an operating error is a DomainError, an OperatingError or another named class',
    allowed: [
      {
        path: 'src/drills/',
        reason: "a drill's failed check is its report: the step throws it and the harness prints it",
      },
    ],
  },
];

const sourceFilesMax = 2_000;

/** Tests and the helpers only tests import (`test-support.ts`) may throw plain errors and the like. */
function isTestCode(name: string): boolean {
  return name.endsWith('.test.ts') || name === 'test-support.ts';
}

/** Every non-test TypeScript file under `src/`, as paths relative to `root`. */
export async function sourceFiles(root: string): Promise<string[]> {
  const entries = await readdir(join(root, 'src'), { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !isTestCode(entry.name))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
  if (files.length > sourceFilesMax) throw new Error(`more than ${sourceFilesMax} source files under src/`);
  return files;
}

function isAllowed(rule: TidyRule, file: string): boolean {
  return rule.allowed.some((entry) =>
    entry.path.endsWith('/') ? file.startsWith(entry.path) : file === entry.path,
  );
}

/** Lines that are only a comment are skipped: prose may name what the code must not do. */
const commentLine = /^\s*(\/\/|\/\*|\*)/;

export function checkText(rules: readonly TidyRule[], file: string, text: string): Violation[] {
  const violations: Violation[] = [];
  const lines = text.split('\n');
  for (const rule of rules) {
    if (isAllowed(rule, file)) continue;
    lines.forEach((line, index) => {
      if (commentLine.test(line) || !rule.pattern.test(line)) return;
      violations.push({ file, line: index + 1, rule: rule.name, text: line.trim() });
    });
  }
  return violations;
}

export async function checkTree(root: string, rules: readonly TidyRule[] = tidyRules): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const file of await sourceFiles(root)) {
    violations.push(...checkText(rules, file, await readFile(join(root, file), 'utf8')));
  }
  return violations;
}

export function describeViolation(violation: Violation): string {
  const rule = tidyRules.find((candidate) => candidate.name === violation.rule);
  return `${violation.file}:${violation.line}: ${violation.rule}: ${rule?.message ?? ''}\n    ${violation.text}`;
}
