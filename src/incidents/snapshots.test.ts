import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import type { Role } from '../platform/auth/roles.ts';
import { changeStatus, declareIncident, getTimeline } from './service.ts';

/** A triage snapshot taken for an incident record is attached to it and read back. */

let service: TestService;
const alice = { name: 'alice', requestId: undefined };
const unknownId = '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17';

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

async function call(role: Role, method: 'GET' | 'POST', url: string, payload?: unknown) {
  return service.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${await service.token(role, `${role}-ana`)}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
}

async function snapshotCount(): Promise<number> {
  const [row] = await service.db.sql<
    { count: number }[]
  >`select count(*)::int as count from incident_snapshots`;
  return row?.count ?? 0;
}

describe('snapshots attached to incidents', () => {
  it('attaches a snapshot to the incident with a snapshot_attached event, lists it on the incident and reads it back', async () => {
    const { id } = await declareIncident(service.db.sql, { title: 'ledger off', severity: 'P0' }, alice);
    const taken = await call('operator', 'POST', '/internal/incident/snapshot', { incident: id });
    expect(taken.statusCode, taken.body).toBe(201);
    const snapshot = taken.json();
    expect(snapshot.incidentId).toBe(id);

    const events = await getTimeline(service.db.sql, id, undefined, 100);
    const attached = events.filter((event) => event.kind === 'snapshot_attached');
    expect(attached).toHaveLength(1);
    expect(attached[0]).toMatchObject({ actor: 'operator-ana', detail: { snapshotId: snapshot.id } });

    const shown = (await call('viewer', 'GET', `/internal/incidents/${id}`)).json();
    expect(shown.snapshots.map((head: { id: string }) => head.id)).toEqual([snapshot.id]);

    const read = await call('operator', 'GET', `/internal/incident/snapshot/${snapshot.id}`);
    expect(read.statusCode, read.body).toBe(200);
    expect(read.json()).toMatchObject({
      id: snapshot.id,
      incidentId: id,
      incidentRef: id,
      takenBy: 'operator-ana',
    });
    expect(Object.keys(read.json().content).sort()).toEqual(
      ['dependencies', 'doublePayouts', 'escrow', 'ledger', 'loops', 'stellar', 'stuck', 'summary'].sort(),
    );
  });

  it('attaches to a resolved incident too: evidence may come after the impact ended', async () => {
    const { id } = await declareIncident(service.db.sql, { title: 'over', severity: 'P3' }, alice);
    await changeStatus(service.db.sql, id, 'resolved', undefined, alice);
    const taken = await call('admin', 'POST', '/internal/incident/snapshot', { incident: id });
    expect(taken.statusCode, taken.body).toBe(201);
    const kinds = (await getTimeline(service.db.sql, id, undefined, 100)).map((event) => event.kind);
    expect(kinds.at(-1)).toBe('snapshot_attached');
  });

  it('refuses an unknown incident id with a 404 and stores nothing', async () => {
    const before = await snapshotCount();
    const refused = await call('operator', 'POST', '/internal/incident/snapshot', { incident: unknownId });
    expect(refused.statusCode).toBe(404);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.json().type).toBe('incidents/not-found');
    expect(await snapshotCount()).toBe(before);
  });

  it('keeps accepting a free-text reference, attached to no incident', async () => {
    const taken = await call('operator', 'POST', '/internal/incident/snapshot', { incident: 'INC-7' });
    expect(taken.statusCode, taken.body).toBe(201);
    expect(taken.json().incidentId).toBeNull();
    const read = (await call('operator', 'GET', `/internal/incident/snapshot/${taken.json().id}`)).json();
    expect(read).toMatchObject({ incidentRef: 'INC-7', incidentId: null });
  });

  it('reads a snapshot back for operators only, and answers 404 for an unknown one', async () => {
    const taken = (await call('operator', 'POST', '/internal/incident/snapshot', {})).json();
    const url = `/internal/incident/snapshot/${taken.id}`;
    expect((await call('viewer', 'GET', url)).statusCode).toBe(403);
    expect((await call('service', 'GET', url)).statusCode).toBe(403);
    expect((await service.app.inject({ method: 'GET', url })).statusCode).toBe(401);
    expect((await call('admin', 'GET', url)).statusCode).toBe(200);
    const missing = await call('operator', 'GET', `/internal/incident/snapshot/${unknownId}`);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().type).toBe('incidents/snapshot-not-found');
    expect((await call('operator', 'GET', '/internal/incident/snapshot/nope')).statusCode).toBe(400);
  });
});
