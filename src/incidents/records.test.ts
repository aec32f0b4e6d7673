import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import {
  addNote,
  assignRole,
  changeSeverity,
  changeStatus,
  declareIncident,
  getRoles,
  getTimeline,
  recordOnOpenIncidents,
} from './service.ts';

let service: TestService;
const alice = { name: 'alice', requestId: undefined };
const bob = { name: 'bob', requestId: undefined };

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

describe('incident records', () => {
  it('a declared incident is acknowledged by its declarer and carries the targets of its severity', async () => {
    const incident = await declareIncident(service.db.sql, { title: 'payouts slow', severity: 'P1' }, alice);
    expect(incident.status).toBe('investigating');
    expect(incident.acknowledgedBy).toBe('alice');
    expect(incident.targets.respond.targetSeconds).toBe(15 * 60);
    expect(incident.targets.respond.met).toBe(true);
    expect(incident.targets.resolve.targetSeconds).toBe(4 * 60 * 60);
    expect(incident.targets.resolve.met).toBeNull();
  });

  it('walks the status machine, refuses an unlisted transition, and reopens with a count', async () => {
    const sql = service.db.sql;
    const { id } = await declareIncident(sql, { title: 'deposits missing', severity: 'P2' }, alice);
    await expect(changeStatus(sql, id, 'resolved', undefined, alice)).resolves.toMatchObject({
      status: 'resolved',
    });
    await expect(changeStatus(sql, id, 'monitoring', undefined, alice)).rejects.toMatchObject({
      type: 'incidents/illegal-transition',
    });
    await expect(changeSeverity(sql, id, 'P0', undefined, alice)).rejects.toMatchObject({
      type: 'incidents/resolved',
    });
    const reopened = await changeStatus(sql, id, 'investigating', 'came back', bob);
    expect(reopened).toMatchObject({ status: 'investigating', reopenedCount: 1, resolvedAt: null });
    const identified = await changeStatus(sql, id, 'identified', 'provider down', bob);
    expect(identified.statusReason).toBe('the cause is known: provider down');
  });

  it('keeps the history of roles and a timeline whose times never go backwards, each event in the audit log', async () => {
    const sql = service.db.sql;
    const { id } = await declareIncident(sql, { title: 'horizon down', severity: 'P0' }, alice);
    await assignRole(sql, id, 'commander', 'alice', alice);
    const roles = await assignRole(sql, id, 'commander', 'bob', alice);
    expect(roles.map((role) => [role.subject, role.renouncedAt === null])).toEqual([
      ['alice', false],
      ['bob', true],
    ]);
    expect(await getRoles(sql, id)).toHaveLength(2);
    await addNote(sql, id, 'failing over to horizon-1', bob);
    const timeline = await getTimeline(sql, id, undefined, 100);
    expect(timeline.map((event) => event.kind)).toEqual([
      'declared',
      'role_assumed',
      'role_renounced',
      'role_assumed',
      'note',
    ]);
    const times = timeline.map((event) => Date.parse(event.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const [audit] = await sql<{ count: string }[]>`
      select count(*)::text as count from audit_log where subject_type = 'incident' and subject_id = ${id}`;
    expect(Number(audit?.count)).toBe(timeline.length);
    await expect(
      sql`update incident_timeline set summary = 'x' where incident_id = ${id}::uuid`,
    ).rejects.toThrow(/append-only/);
  });

  it('adds an automatic event to open incidents only', async () => {
    const sql = service.db.sql;
    const open = await declareIncident(sql, { title: 'open one', severity: 'P3' }, alice);
    const closed = await declareIncident(sql, { title: 'closed one', severity: 'P3' }, alice);
    await changeStatus(sql, closed.id, 'resolved', undefined, alice);
    await withTransaction(sql, (tx) =>
      recordOnOpenIncidents(
        tx,
        { kind: 'payments_mode_changed', source: 'system', summary: 'normal → read_only' },
        bob,
      ),
    );
    const kinds = async (id: string) =>
      (await getTimeline(sql, id, undefined, 100)).map((event) => event.kind);
    expect(await kinds(open.id)).toContain('payments_mode_changed');
    expect(await kinds(closed.id)).not.toContain('payments_mode_changed');
  });
});
