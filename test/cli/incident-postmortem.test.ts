import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { draftSections, inline, notWritten } from '../../src/incidents/postmortem-markdown.ts';
import {
  addNote,
  appendTimeline,
  changeSeverity,
  changeStatus,
  declareIncident,
  getTimeline,
  lockIncident,
} from '../../src/incidents/service.ts';
import { withTransaction } from '../../src/platform/db/transaction.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { runCli } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

/** `settledesk incident postmortem` and `incident action …` against the database, no API running. */

let db: TestDatabase;
let env: Record<string, string>;
let folder: string;
const alice = { name: 'alice', requestId: undefined };

beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db);
  folder = await mkdtemp(join(tmpdir(), 'settledesk-postmortem-'));
});

afterAll(async () => {
  await db.drop();
  await rm(folder, { recursive: true, force: true });
});

/** The arguments of `incident action add`. */
function addAction(id: string, title: string, owner: string, due: string, ...rest: string[]): string[] {
  return ['incident', 'action', 'add', id, '--title', title, '--owner', owner, '--due', due, ...rest];
}

async function cli(args: string[]) {
  const run = await runCli(args, env);
  expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0);
  return run.stdout;
}

/** An incident run the way an on-call engineer runs one, with an alert event from Alertmanager's side. */
async function incidentWithHistory(): Promise<string> {
  const sql = db.sql;
  const { id } = await declareIncident(
    sql,
    { title: 'Payouts | stuck', severity: 'P2', impact: 'Payouts delayed for 40 merchants.' },
    alice,
  );
  await withTransaction(sql, async (tx) => {
    await lockIncident(tx, id);
    await appendTimeline(
      tx,
      id,
      {
        kind: 'alert_firing',
        source: 'alertmanager',
        summary: 'StuckSettlements firing: payouts_stuck{state="submitted"} > 0',
      },
      { name: 'alertmanager', requestId: undefined },
    );
  });
  await changeSeverity(sql, id, 'P1', 'more merchants', alice);
  await changeStatus(sql, id, 'identified', 'horizon-0 lags', alice);
  await addNote(sql, id, 'failing over to horizon-1\n## not a heading', alice);
  await changeStatus(sql, id, 'monitoring', undefined, alice);
  await changeStatus(sql, id, 'resolved', undefined, alice);
  return id;
}

describe('settledesk incident postmortem', () => {
  it('writes a draft with every section, its timeline taken from the record, oldest first', async () => {
    const id = await incidentWithHistory();
    const added = JSON.parse(
      await cli(['--json', ...addAction(id, 'Alert on ingestion lag', 'bob', '2099-01-31', '--as', 'alice')]),
    ) as { id: string };
    await cli(addAction(id, 'Fix the failover', 'carol', '2099-02-15'));
    await cli(['incident', 'action', 'update', id, added.id, '--owner', 'bob@ops', '--due', '2099-01-30']);
    await cli(['incident', 'action', 'done', id, added.id, '--reason', 'merged', '--as', 'bob']);
    await cli([
      'incident',
      'postmortem-write',
      id,
      '--root-cause',
      'horizon-0 fell behind',
      '--lessons',
      'watch lag',
    ]);

    const markdown = await cli(['incident', 'postmortem', id]);
    const headings = markdown.split('\n').filter((line) => line.startsWith('#'));
    expect(headings).toEqual([
      expect.stringMatching(/^# Postmortem: incident \d+: Payouts \\\| stuck$/),
      ...draftSections.map((section) => `## ${section}`),
    ]);
    const timelineSection = markdown.slice(
      markdown.indexOf('## Timeline'),
      markdown.indexOf('## Root cause'),
    );
    const events = await getTimeline(db.sql, id, undefined, 500);
    expect(events.map((event) => event.kind)).toEqual([
      'declared',
      'alert_firing',
      'severity_changed',
      'status_changed',
      'note',
      'status_changed',
      'status_changed',
      'action_item_added',
      'action_item_added',
      'action_item_updated',
      'action_item_updated',
      'postmortem_drafted',
    ]);
    const rows = timelineSection.split('\n').filter((line) => /^\| \d{4}-/.test(line));
    expect(rows).toEqual(
      events.map(
        (event) =>
          `| ${event.at.slice(0, 10)} ${event.at.slice(11, 19)} UTC | ${event.kind} | ${event.source} | ${event.actor} | ${inline(event.summary)} |`,
      ),
    );
    expect(markdown).toContain('| Alert on ingestion lag | bob@ops | 2099-01-30 | done |');
    expect(markdown).toContain('| Fix the failover | carol | 2099-02-15 | open |');
    expect(markdown).toContain('## Root cause\n\nhorizon-0 fell behind\n');
    expect(markdown).toContain('## Lessons learned\n\nwatch lag\n');
    expect(markdown).toContain(`## What went well\n\n${notWritten}\n`);
    expect(markdown).toContain('declared P2.');

    const file = join(folder, 'postmortem.md');
    expect(await cli(['incident', 'postmortem', id, '--output', file])).toBe(`wrote ${file}\n`);
    const written = await readFile(file, 'utf8');
    const undated = (text: string) => text.replace(/generated by settledesk on [^_]* from/, '');
    expect(undated(written)).toBe(undated(markdown));
  });

  it('lists action items and refuses bad input with exit status 1, adding nothing', async () => {
    const { id } = await declareIncident(db.sql, { title: 'deposits missing', severity: 'P3' }, alice);
    const before = await getTimeline(db.sql, id, undefined, 500);
    const badDay = await runCli(addAction(id, 't', 'o', '2026-02-30'), env);
    expect(badDay.code).toBe(1);
    expect(badDay.stderr).toContain('--due must be a day YYYY-MM-DD');
    const unknown = await runCli(
      ['incident', 'action', 'done', id, '00000000-0000-4000-8000-000000000000'],
      env,
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('incidents/action-item-not-found');
    const nothing = await runCli(['incident', 'postmortem-write', id], env);
    expect(nothing.code).toBe(1);
    const noChange = await runCli(
      ['incident', 'action', 'update', id, '00000000-0000-4000-8000-000000000000'],
      env,
    );
    expect(noChange.code).toBe(1);
    expect(noChange.stderr).toContain('give at least one of --title, --owner, --due');
    expect(await getTimeline(db.sql, id, undefined, 500)).toEqual(before);
    await cli(addAction(id, 'Reconcile the provider', 'dan', '2000-01-01'));
    const list = await cli(['incident', 'action', 'list', id]);
    expect(list).toMatch(/^id\s+status\s+due\s+owner\s+title$/m);
    expect(list).toMatch(/OVERDUE\s+2000-01-01\s+dan\s+Reconcile the provider/);
  });
});
