import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../test/support/process.ts';

const fence = '```';
let directory: string;
let fixture: string;
let env: Record<string, string>;

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), 'settledesk-runbook-cli-'));
  fixture = join(directory, 'fixture.md');
  writeFileSync(
    fixture,
    [
      '# Fixture runbook',
      '',
      '## Overview',
      '',
      `${fence}sh {"name":"find-thing"}`,
      'export THING_ID=thing-42',
      'echo "found $THING_ID"',
      fence,
      '',
      `${fence}sh {"name":"use-thing"}`,
      'echo "using $THING_ID"',
      fence,
      '',
      `${fence}sh {"name":"broken-check"}`,
      'echo "the queue is not empty" >&2',
      'exit 1',
      fence,
      '',
      `${fence}sh {"name":"change-thing","mutating":true}`,
      'echo "changed $THING_ID"',
      fence,
      '',
    ].join('\n'),
  );
  env = { SETTLEDESK_DATA_DIR: directory, LOG_LEVEL: 'silent' };
});

afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe('settledesk runbook', () => {
  it('list shows every runbook in docs/runbooks with its title and cells', async () => {
    const result = await runCli(['runbook', 'list'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('horizon-outage.md: Horizon outage / Stellar hard-down\n');
    expect(result.stdout).toMatch(/^ {2}check-stellar-paths {2}\[sh, line \d+\]$/m);
    expect(result.stdout).toMatch(/^ {2}freeze-payouts \(mutating\) {2}\[sh, line \d+\]$/m);
  });

  it('show prints the sections with their anchors and the cells with their code', async () => {
    const result = await runCli(['runbook', 'show', 'horizon-outage'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('  Immediate mitigation  #immediate-mitigation\n');
    expect(result.stdout).toMatch(
      /^check-stellar-paths \(read-only\) {2}line \d+\n {2}settledesk triage stellar$/m,
    );
    expect(result.stdout).toMatch(/^freeze-payouts \(mutating: needs --yes\)/m);
  });

  it('run runs the cells in order, carrying exported variables, and prints their output', async () => {
    const result = await runCli(
      ['runbook', 'run', fixture, '--cell', 'find-thing', '--cell', 'use-thing'],
      env,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('found thing-42\nusing thing-42\n');
    expect(result.stderr).toContain('--- cell find-thing\n');
    expect(result.stderr).toContain('--- 2 cell(s) passed: find-thing, use-thing\n');
  });

  it('run exits 1 naming the cell that failed, its line, and the cells not run', async () => {
    const result = await runCli(
      ['runbook', 'run', fixture, '--cell', 'find-thing', '--cell', 'broken-check', '--cell', 'use-thing'],
      env,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('found thing-42\n');
    expect(result.stderr).toContain('the queue is not empty\n');
    expect(result.stderr).toContain(
      `settledesk: cell "broken-check" (${fixture}:14) exited with status 1; not run: use-thing\n`,
    );
  });

  it('run refuses a mutating cell without --yes, before running anything', async () => {
    const refused = await runCli(
      ['runbook', 'run', fixture, '--cell', 'find-thing', '--cell', 'change-thing'],
      env,
    );
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe(
      `settledesk: ${fixture}: refusing to run mutating cell "change-thing" without --yes\n`,
    );
    const allowed = await runCli(
      ['runbook', 'run', fixture, '--cell', 'find-thing', '--cell', 'change-thing', '--yes'],
      env,
    );
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toBe('found thing-42\nchanged thing-42\n');
  });

  it('run --json prints each cell result', async () => {
    const result = await runCli(['--json', 'runbook', 'run', fixture, '--cell', 'find-thing'], env);
    expect(result.code).toBe(0);
    const results = JSON.parse(result.stdout) as { name: string; code: number; stdout: string }[];
    expect(results).toMatchObject([
      { name: 'find-thing', code: 0, stdout: 'found thing-42\n', timedOut: false },
    ]);
  });

  it('run names the runbook it cannot find and the cell it does not know', async () => {
    const missing = await runCli(['runbook', 'run', 'no-such-runbook', '--cell', 'x'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^settledesk: no runbook no-such-runbook \(looked in .*docs\/runbooks/);
    const unknown = await runCli(['runbook', 'run', fixture, '--cell', 'nope'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      `settledesk: ${fixture}: no cell named "nope" (cells: find-thing, use-thing, broken-check, change-thing)\n`,
    );
  });

  it('run kills a cell that passes --timeout-ms and says so', async () => {
    const slow = join(directory, 'slow.md');
    writeFileSync(slow, `# Slow\n\n${fence}sh {"name":"wait"}\nsleep 30\n${fence}\n`);
    const result = await runCli(['runbook', 'run', slow, '--cell', 'wait', '--timeout-ms', '300'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`settledesk: cell "wait" (${slow}:3) timed out after 300 ms\n`);
  });
});
