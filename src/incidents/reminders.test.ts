import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { createLogger } from '../platform/logging.ts';
import { registry } from '../platform/metrics.ts';
import { completeReminder, getReminders } from './escalation.ts';
import { runEscalations } from './escalation-runner.ts';
import { remindersOf } from './reminders.ts';
import {
  addNote,
  appendTimeline,
  changeSeverity,
  changeStatus,
  declareIncident,
  getTimeline,
  lockIncident,
} from './service.ts';

/** Update reminders stored as due_at, reacting to timeline events only. */

let service: TestService;
const alice = { name: 'alice', requestId: undefined };
const silent = createLogger('silent');
const minute = 60_000;

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

function minutesBetween(from: string, to: string): number {
  return Math.round((Date.parse(to) - Date.parse(from)) / minute);
}

async function open(id: string) {
  return Object.fromEntries((await remindersOf(service.db.sql, id)).map((row) => [row.kind, row]));
}

describe('update reminders', () => {
  it('asks a P0 for a status-page update at once and an internal update every 15 minutes, reset by a note', async () => {
    const sql = service.db.sql;
    const incident = await declareIncident(sql, { title: 'payouts stuck', severity: 'P0' }, alice);
    const first = await open(incident.id);
    expect(Object.keys(first).sort()).toEqual(['internal_update', 'status_page_update']);
    expect(minutesBetween(incident.declaredAt, first.internal_update?.dueAt ?? '')).toBe(15);
    expect(minutesBetween(incident.declaredAt, first.status_page_update?.dueAt ?? '')).toBe(0);
    await addNote(sql, incident.id, 'failing over', alice);
    const afterNote = await open(incident.id);
    expect(afterNote.internal_update?.id).not.toBe(first.internal_update?.id);
    const history = await getReminders(sql, incident.id, undefined, 50);
    expect(history.find((row) => row.id === first.internal_update?.id)).toMatchObject({
      doneReason: 'note',
      doneBy: 'alice',
    });
  });

  it('gives a P2 an hour for the status-page update and no internal-update reminder', async () => {
    const incident = await declareIncident(service.db.sql, { title: 'slow deposits', severity: 'P2' }, alice);
    const reminders = await open(incident.id);
    expect(Object.keys(reminders)).toEqual(['status_page_update']);
    expect(minutesBetween(incident.declaredAt, reminders.status_page_update?.dueAt ?? '')).toBe(60);
  });

  it('closes the status-page reminder when a message_published event is appended', async () => {
    const sql = service.db.sql;
    const incident = await declareIncident(sql, { title: 'horizon down', severity: 'P1' }, alice);
    await withTransaction(sql, async (tx) => {
      await lockIncident(tx, incident.id);
      await appendTimeline(
        tx,
        incident.id,
        { kind: 'message_published', source: 'person', summary: 'we are having payment delays' },
        alice,
      );
    });
    expect(Object.keys(await open(incident.id))).toEqual(['internal_update']);
  });

  it('announces a due reminder on the timeline once, and shows it overdue until it is done', async () => {
    const sql = service.db.sql;
    const incident = await declareIncident(sql, { title: 'api errors', severity: 'P1' }, alice);
    const later = new Date(Date.parse(incident.declaredAt) + 16 * minute);
    await runEscalations({ sql, logger: silent, webhook: false }, later);
    await runEscalations({ sql, logger: silent, webhook: false }, later);
    const due = (await getTimeline(sql, incident.id, undefined, 100)).filter(
      (event) => event.kind === 'reminder_due',
    );
    expect(due.map((event) => event.detail.kind).sort()).toEqual(['internal_update', 'status_page_update']);
    expect((await open(incident.id)).status_page_update?.overdue).toBe(true);
    const gauge = await registry.getSingleMetric('incident_reminders_overdue')?.get();
    const statusPage = gauge?.values.find((value) => value.labels.kind === 'status_page_update');
    expect(statusPage?.value).toBeGreaterThan(0);
  });

  it('on resolving a P0 stops the update reminders and asks for the postmortem meeting within 48 h, closed by hand', async () => {
    const sql = service.db.sql;
    const incident = await declareIncident(sql, { title: 'ledger imbalance', severity: 'P1' }, alice);
    await changeSeverity(sql, incident.id, 'P0', 'money may be wrong', alice);
    const resolved = await changeStatus(sql, incident.id, 'resolved', 'repaired', alice);
    const reminders = await open(incident.id);
    expect(Object.keys(reminders)).toEqual(['postmortem_meeting']);
    expect(minutesBetween(resolved.resolvedAt ?? '', reminders.postmortem_meeting?.dueAt ?? '')).toBe(
      48 * 60,
    );
    expect(await completeReminder(sql, incident.id, 'postmortem_meeting', alice)).toEqual([]);
    await expect(completeReminder(sql, incident.id, 'postmortem_meeting', alice)).rejects.toMatchObject({
      type: 'incidents/no-open-reminder',
    });
    const kinds = (await getTimeline(sql, incident.id, undefined, 100)).map((event) => event.kind);
    expect(kinds.at(-1)).toBe('reminder_done');
  });

  it('starts internal updates when a P2 is raised to P1, and stops them when it is lowered again', async () => {
    const sql = service.db.sql;
    const incident = await declareIncident(sql, { title: 'webhooks failing', severity: 'P2' }, alice);
    await changeSeverity(sql, incident.id, 'P1', 'merchants affected', alice);
    const raised = await open(incident.id);
    expect(Object.keys(raised).sort()).toEqual(['internal_update', 'status_page_update']);
    expect(Date.parse(raised.status_page_update?.dueAt ?? '')).toBeLessThanOrEqual(Date.now());
    await changeSeverity(sql, incident.id, 'P3', 'only one merchant', alice);
    expect(Object.keys(await open(incident.id))).toEqual(['status_page_update']);
  });
});
