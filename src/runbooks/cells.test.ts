import { describe, expect, it } from 'vitest';
import { parseRunbook, RunbookError, runCells, timedOutExitCode } from './cells.ts';

const fence = '```';

function runbook(...cells: { name: string; code: string; mutating?: boolean }[]) {
  const body = cells
    .map((cell) => {
      const attributes = JSON.stringify(
        cell.mutating ? { name: cell.name, mutating: true } : { name: cell.name },
      );
      return `${fence}sh ${attributes}\n${cell.code}\n${fence}`;
    })
    .join('\n\n');
  return parseRunbook(`# Test runbook\n\n## Overview\n\n${body}\n`, 'test.md');
}

describe('parseRunbook', () => {
  it('reads the title, the sections with GitHub anchors and the cells with their lines', () => {
    const parsed = parseRunbook(
      [
        '# Horizon outage',
        '',
        '## Immediate mitigation',
        '',
        '### L2 by role: `payments` engineer & DB owner',
        '',
        '1. Check it:',
        '',
        '   ```sh {"name":"check-horizon"}',
        '   curl -fsS "$STELLAR_HORIZON_URL/"',
        '   ```',
        '',
        '```sh {"name":"freeze-payouts","mutating":true}',
        'settledesk mode freeze --reason "horizon outage"',
        '```',
        '',
        '```promql',
        'max(payouts_waiting_for_network)',
        '```',
        '',
        '## Overview',
        '## Overview',
      ].join('\n'),
      'horizon.md',
    );
    expect(parsed.title).toBe('Horizon outage');
    expect(parsed.sections.map((section) => [section.level, section.anchor])).toEqual([
      [1, 'horizon-outage'],
      [2, 'immediate-mitigation'],
      [3, 'l2-by-role-payments-engineer--db-owner'],
      [2, 'overview'],
      [2, 'overview-1'],
    ]);
    expect(parsed.cells).toEqual([
      {
        name: 'check-horizon',
        language: 'sh',
        mutating: false,
        code: 'curl -fsS "$STELLAR_HORIZON_URL/"',
        line: 9,
      },
      {
        name: 'freeze-payouts',
        language: 'sh',
        mutating: true,
        code: 'settledesk mode freeze --reason "horizon outage"',
        line: 13,
      },
    ]);
    expect(parsed.blocks).toEqual([
      { language: 'promql', code: 'max(payouts_waiting_for_network)', line: 17 },
    ]);
  });

  it('refuses a malformed attribute object, naming the file and line', () => {
    expect(() => parseRunbook('# T\n\n```sh {"name":"a",}\necho\n```\n', 'bad.md')).toThrow(
      /^bad\.md:3: malformed cell attributes/,
    );
    expect(() => parseRunbook('# T\n\n```sh {"name":"Not Kebab"}\necho\n```\n', 'bad.md')).toThrow(
      /bad\.md:3:/,
    );
    expect(() => parseRunbook('# T\n\n```sh {"name":"a","mutatting":true}\necho\n```\n', 'bad.md')).toThrow(
      /bad\.md:3: unknown cell attribute "mutatting"/,
    );
    expect(() => parseRunbook('# T\n\n```sh {"name":"a","mutating":"yes"}\necho\n```\n', 'bad.md')).toThrow(
      /bad\.md:3: cell "mutating" must be true or false/,
    );
  });

  it('refuses a duplicate cell name, naming both lines', () => {
    const text = '# T\n\n```sh {"name":"a"}\necho 1\n```\n\n```sh {"name":"a"}\necho 2\n```\n';
    expect(() => parseRunbook(text, 'dup.md')).toThrow('dup.md:7: cell name "a" is already used on line 3');
  });

  it('refuses a code block that is never closed', () => {
    expect(() => parseRunbook('# T\n\n```sh {"name":"a"}\necho 1\n', 'open.md')).toThrow('open.md:3:');
  });
});

describe('runCells', () => {
  it('carries exported variables from one cell to the next, not unexported ones or the directory', async () => {
    const book = runbook(
      { name: 'set', code: 'export PAYOUT_ID=p-123\nLOCAL_ONLY=x\ncd /' },
      { name: 'use', code: 'echo "id=$PAYOUT_ID local=$(printenv LOCAL_ONLY || echo unset) pwd=$(pwd)"' },
    );
    const results = await runCells(book, ['set', 'use'], { cwd: '/tmp' });
    expect(results.map((result) => [result.name, result.code])).toEqual([
      ['set', 0],
      ['use', 0],
    ]);
    expect(results[1]!.stdout).toBe('id=p-123 local=unset pwd=/tmp\n');
  });

  it('passes the caller environment over the default SETTLEDESK_URL; undefined removes a variable', async () => {
    const book = runbook({
      name: 'show',
      code: 'echo "$SETTLEDESK_URL $EXTRA $(printenv HOME || echo removed)"',
    });
    const [result] = await runCells(book, ['show'], { env: { EXTRA: 'given', HOME: undefined } });
    expect(result!.stdout).toBe(`${process.env.SETTLEDESK_URL ?? 'http://127.0.0.1:8080'} given removed\n`);
  });

  it('puts this checkout of settledesk on PATH', async () => {
    const book = runbook({ name: 'help', code: 'settledesk runbook --help' });
    const [result] = await runCells(book, ['help']);
    expect(result).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^Usage: settledesk runbook \[options\] \[command\]\n/),
    });
  });

  it('runs with bash -euo pipefail: an unset variable or a failing pipeline stage fails the cell', async () => {
    const book = runbook(
      { name: 'unset', code: 'echo "$NOT_SET_ANYWHERE"' },
      { name: 'pipe', code: 'false | cat\necho not reached' },
    );
    const [unset] = await runCells(book, ['unset']);
    expect(unset!.code).not.toBe(0);
    expect(unset!.stderr).toContain('NOT_SET_ANYWHERE');
    const [pipe] = await runCells(book, ['pipe']);
    expect(pipe).toMatchObject({ code: 1, stdout: '' });
  });

  it('stops at the first failing cell and returns it last', async () => {
    const book = runbook(
      { name: 'first', code: 'echo one' },
      { name: 'broken', code: 'echo "queue not empty" >&2\nexit 3' },
      { name: 'after', code: 'echo never' },
    );
    const results = await runCells(book, ['first', 'broken', 'after']);
    expect(results.map((result) => [result.name, result.code])).toEqual([
      ['first', 0],
      ['broken', 3],
    ]);
    expect(results[1]!.stderr).toBe('queue not empty\n');
  });

  it('refuses a mutating cell without yes before running anything', async () => {
    const book = runbook(
      { name: 'read', code: 'touch "$MARKER"' },
      { name: 'freeze', code: 'echo froze', mutating: true },
    );
    const marker = `/tmp/settledesk-runbook-marker-${process.pid}-${Date.now()}`;
    await expect(runCells(book, ['read', 'freeze'], { env: { MARKER: marker } })).rejects.toThrow(
      'refusing to run mutating cell "freeze" without --yes',
    );
    const { existsSync, rmSync } = await import('node:fs');
    expect(existsSync(marker)).toBe(false);
    const results = await runCells(book, ['read', 'freeze'], { env: { MARKER: marker }, yes: true });
    expect(results.map((result) => result.stdout)).toEqual(['', 'froze\n']);
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);
  });

  it('refuses an unknown cell name, listing the cells there are', async () => {
    const book = runbook({ name: 'only', code: 'true' });
    await expect(runCells(book, ['missing'])).rejects.toThrow(
      new RunbookError('test.md: no cell named "missing" (cells: only)'),
    );
  });

  it('kills a cell that runs past its time limit', async () => {
    const book = runbook({ name: 'slow', code: 'echo started\nsleep 30\necho finished' });
    const [result] = await runCells(book, ['slow'], { timeoutMs: 300 });
    expect(result).toMatchObject({
      name: 'slow',
      code: timedOutExitCode,
      timedOut: true,
      stdout: 'started\n',
    });
    expect(result!.stderr).toContain('cell "slow" timed out after 300 ms');
  });

  it('keeps at most the output limit and says how much was dropped', async () => {
    const book = runbook({ name: 'loud', code: 'head -c 3000000 /dev/zero | tr "\\0" x' });
    const [result] = await runCells(book, ['loud']);
    expect(result!.truncated).toBe(true);
    expect(result!.stdout).toMatch(/\[\d+ more bytes of output dropped\]\n$/);
    expect(result!.stdout.length).toBeLessThan(1024 * 1024 + 100);
  });
});
