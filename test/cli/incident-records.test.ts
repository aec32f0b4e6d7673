import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { runCli } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

/** `settledesk incident …` records with no API running: straight from the database. */

let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db);
});

afterAll(async () => {
  await db.drop();
});

async function json(args: string[]): Promise<Record<string, unknown>> {
  const result = await runCli(['--json', 'incident', ...args], env);
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout);
}

describe('settledesk incident records', () => {
  it('runs an incident from a terminal, each step on the timeline under the --as name, a snapshot attached', async () => {
    const declared = await json([
      'declare',
      '--title',
      'payouts stuck',
      '--severity',
      'P1',
      '--component',
      'payouts',
      '--component',
      'stellar',
      '--impact',
      'payouts late',
      '--as',
      'oncall-ana',
    ]);
    expect(declared).toMatchObject({
      severity: 'P1',
      status: 'investigating',
      components: ['payouts', 'stellar'],
      declaredBy: 'oncall-ana',
    });
    const id = declared.id as string;
    await json(['role', id, 'commander', 'oncall-ana', '--as', 'oncall-ana']);
    await json(['severity', id, 'P0', '--reason', 'money at risk', '--as', 'oncall-ana']);
    await json(['update', id, '--impact', 'all payouts held', '--as', 'oncall-bo']);
    await json(['note', id, 'froze payouts', '--as', 'oncall-bo']);
    await json(['status', id, 'identified', '--reason', 'horizon down', '--as', 'oncall-ana']);
    await json(['ack', id, '--as', 'oncall-bo']);
    const renounced = await json(['role', id, 'commander', '--renounce', '--as', 'oncall-ana']);
    expect(renounced.roles).toEqual([expect.objectContaining({ subject: 'oncall-ana', role: 'commander' })]);
    expect((renounced.roles as { renouncedAt: string | null }[])[0]?.renouncedAt).not.toBeNull();

    const snapshot = await runCli(
      ['--json', 'triage', 'snapshot', '--incident', id, '--as', 'oncall-bo'],
      env,
    );
    expect(snapshot.code, snapshot.stderr).toBe(0);
    expect(JSON.parse(snapshot.stdout).incidentId).toBe(id);
    const readBack = await runCli(['triage', 'show-snapshot', JSON.parse(snapshot.stdout).id], env);
    expect(readBack.code, readBack.stderr).toBe(0);
    expect(readBack.stdout).toContain(`by oncall-bo for ${id}`);

    const timeline = await json(['timeline', id]);
    const events = timeline.items as { kind: string; actor: string }[];
    expect(events.map((event) => event.kind)).toEqual([
      'declared',
      'role_assumed',
      'severity_changed',
      'details_changed',
      'note',
      'status_changed',
      'role_renounced',
      'snapshot_attached',
    ]);
    expect(events.map((event) => event.actor)).toContain('oncall-bo');

    const listed = await json(['list', '--open', '--severity', 'P0']);
    expect((listed.items as { id: string }[]).map((item) => item.id)).toEqual([id]);
    const later = await json(['declare', '--title', 'second', '--severity', 'P3']);
    const first = await json(['list', '--limit', '1']);
    expect((first.items as { id: string }[]).map((item) => item.id)).toEqual([later.id]);
    const second = await json(['list', '--limit', '1', '--cursor', first.nextCursor as string]);
    expect((second.items as { id: string }[]).map((item) => item.id)).toEqual([id]);

    const human = await runCli(['incident', 'show', id], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain('payouts stuck');
    expect(human.stdout).toMatch(/severity: +P0/);
    expect(human.stdout).toMatch(/status: +identified \(the cause is known: horizon down\)/);
    expect(human.stdout).toMatch(/respond within 5 min: met/);
    expect(human.stdout).toContain('froze payouts');
    expect(human.stdout).toMatch(/commander +oncall-ana/);
    expect(human.stdout).toContain(JSON.parse(snapshot.stdout).id);
  });

  it('refuses bad input with a message, changing nothing', async () => {
    const [before] = await db.sql<{ count: number }[]>`select count(*)::int as count from incident_timeline`;
    const cases: [string[], RegExp][] = [
      [['declare', '--title', 'x', '--severity', 'P9'], /--severity/],
      [['declare', '--title', '', '--severity', 'P1'], /--title/],
      [['status', 'not-an-id', 'resolved'], /not an incident id/],
      [['status', '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17', 'resolved'], /incidents\/not-found/],
      [['role', '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17', 'scribe', 'ana'], /role must be one of/],
      [['update', '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17'], /at least one of/],
      [['list', '--cursor', 'nope'], /--cursor is not a cursor/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(['incident', ...args], env);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(message);
    }
    const [after] = await db.sql<{ count: number }[]>`select count(*)::int as count from incident_timeline`;
    expect(after?.count).toBe(before?.count);
  });
});
