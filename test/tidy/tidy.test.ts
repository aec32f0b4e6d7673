import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkText, checkTree, describeViolation, tidyRules } from './rules.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** For each rule, a line it must refuse, in a file the rule covers. */
const planted: Record<string, { file: string; line: string }> = {
  'transaction-policy': {
    file: 'src/payouts/service.ts',
    line: '  return sql.begin(async (tx) => work(tx));',
  },
  'payout-state-groups': {
    file: 'src/ops/data.ts',
    line: "    from payouts where state in ('accepted', 'submitted', 'manual_review')",
  },
  'one-uuid-pattern': {
    file: 'src/webhooks/tasks.ts',
    line: 'const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;',
  },
  'one-stellar-precision': { file: 'src/payouts/service.ts', line: 'const stellarDecimals = 7;' },
  'assert-invariants': {
    file: 'src/ledger/data.ts',
    line: "  if (!row) throw new Error('insert into accounts returned no row');",
  },
};

describe('tidy', () => {
  it('finds no violation of any rule in src/, naming file and line for each', async () => {
    const violations = await checkTree(root);
    expect(violations.map(describeViolation)).toEqual([]);
  });

  it.each(tidyRules.map((rule) => [rule.name]))('rule %s refuses a planted violation', (name) => {
    const sample = planted[name];
    expect(sample, `no planted sample for ${name}`).toBeDefined();
    if (sample === undefined) return;
    const found = checkText(tidyRules, sample.file, `// a comment naming .begin( is prose\n${sample.line}\n`);
    expect(found).toEqual([{ file: sample.file, line: 2, rule: name, text: sample.line.trim() }]);
  });

  it('keeps each exemption list to a few entries, each with its reason', () => {
    for (const rule of tidyRules) {
      expect(rule.allowed.length, rule.name).toBeLessThanOrEqual(4);
      for (const entry of rule.allowed) expect(entry.reason.length, entry.path).toBeGreaterThan(10);
    }
  });
});
