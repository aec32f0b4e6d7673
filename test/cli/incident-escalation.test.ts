import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeStatus, declareIncident } from '../../src/incidents/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { runCli } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

let db: TestDatabase;
let env: Record<string, string>;
let folder = '';
const alice = { name: 'alice', requestId: undefined };

beforeAll(async () => {
  db = await createTestDatabase();
  env = { ...(await testEnv(db)), SETTLEDESK_OPERATOR: 'cli-admin' };
  folder = await mkdtemp(join(tmpdir(), 'settledesk-policy-'));
});

afterAll(async () => {
  await db.drop();
  await rm(folder, { recursive: true, force: true });
});

describe('settledesk incident policy, escalation and reminders', () => {
  it('shows the seeded policy, refuses a bad file, stores a new version; a running incident keeps its steps', async () => {
    const incident = await declareIncident(db.sql, { title: 'horizon down', severity: 'P0' }, alice);
    const shown = await runCli(['--json', 'incident', 'policy', 'show'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ version: 1, reason: 'shipped default (seed 004)' });
    const bad = join(folder, 'bad.json');
    await writeFile(
      bad,
      JSON.stringify({ steps: [{ severities: ['P9'], afterSeconds: 60, target: 'cto' }] }),
    );
    const refused = await runCli(['incident', 'policy', 'set', '--file', bad, '--reason', 'typo'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('bad.json');
    const good = join(folder, 'policy.json');
    await writeFile(
      good,
      JSON.stringify({ steps: [{ severities: ['P0'], afterSeconds: 600, target: 'cto' }] }),
    );
    const stored = await runCli(
      ['--json', 'incident', 'policy', 'set', '--file', good, '--reason', 'faster'],
      env,
    );
    expect(stored.code, stored.stderr).toBe(0);
    expect(JSON.parse(stored.stdout)).toMatchObject({ version: 2, createdBy: 'cli-admin' });
    const steps = await runCli(['--json', 'incident', 'escalation', incident.id], env);
    expect(steps.code, steps.stderr).toBe(0);
    expect(JSON.parse(steps.stdout).map((step: { target: string }) => step.target)).toEqual([
      'engineering_lead',
      'cto',
      'ceo',
    ]);
  });

  it('lists reminders and closes the postmortem meeting by hand', async () => {
    const incident = await declareIncident(db.sql, { title: 'ledger imbalance', severity: 'P1' }, alice);
    await changeStatus(db.sql, incident.id, 'resolved', 'repaired', alice);
    const listed = await runCli(['incident', 'reminders', incident.id], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/postmortem_meeting +due \S+ +open/);
    const done = await runCli(['incident', 'reminder', 'done', incident.id, 'postmortem_meeting'], env);
    expect(done.code, done.stderr).toBe(0);
    const again = await runCli(['incident', 'reminder', 'done', incident.id, 'postmortem_meeting'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('incidents/no-open-reminder');
  });
});
