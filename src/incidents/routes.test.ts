import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import type { Role } from '../platform/auth/roles.ts';
import { declareIncident } from './service.ts';

/**
 * /internal/incidents: staff read, operators and admins act, service tokens and anonymous callers
 * are refused everywhere; bad input is a problem and changes no row.
 */

let service: TestService;
const alice = { name: 'alice', requestId: undefined };
const unknownId = '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17';

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT';

async function call(role: Role | undefined, method: Method, url: string, payload?: unknown) {
  const response = await service.app.inject({
    method,
    url,
    headers: role === undefined ? {} : { authorization: `Bearer ${await service.token(role)}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
  return response;
}

/** Rows of every incident table and the audit log: bad input must leave them all as they were. */
async function counts(): Promise<Record<string, number>> {
  const [row] = await service.db.sql<Record<string, number>[]>`
    select (select count(*)::int from incidents) as incidents,
           (select count(*)::int from incident_roles) as roles,
           (select count(*)::int from incident_timeline) as timeline,
           (select count(*)::int from audit_log) as audit`;
  return row ?? {};
}

type RouteCase = { method: Method; url: (id: string) => string; body?: unknown; ok: number };

const reads: RouteCase[] = [
  { method: 'GET', url: () => '/internal/incidents', ok: 200 },
  { method: 'GET', url: (id) => `/internal/incidents/${id}`, ok: 200 },
  { method: 'GET', url: (id) => `/internal/incidents/${id}/timeline`, ok: 200 },
];

const acts: RouteCase[] = [
  { method: 'POST', url: () => '/internal/incidents', body: { title: 'x', severity: 'P3' }, ok: 201 },
  {
    method: 'PATCH',
    url: (id) => `/internal/incidents/${id}`,
    body: { impact: 'some payouts late' },
    ok: 200,
  },
  { method: 'POST', url: (id) => `/internal/incidents/${id}/status`, body: { to: 'identified' }, ok: 200 },
  { method: 'POST', url: (id) => `/internal/incidents/${id}/severity`, body: { severity: 'P2' }, ok: 200 },
  { method: 'POST', url: (id) => `/internal/incidents/${id}/acknowledge`, body: {}, ok: 200 },
  {
    method: 'PUT',
    url: (id) => `/internal/incidents/${id}/roles/commander`,
    body: { subject: 'bob' },
    ok: 200,
  },
  { method: 'POST', url: (id) => `/internal/incidents/${id}/roles/commander/renounce`, body: {}, ok: 200 },
  { method: 'POST', url: (id) => `/internal/incidents/${id}/notes`, body: { text: 'looking' }, ok: 201 },
];

describe('incident routes: who may call them', () => {
  it('refuses anonymous callers (401) and service tokens (403) on every route', async () => {
    const { id } = await declareIncident(service.db.sql, { title: 'access', severity: 'P3' }, alice);
    for (const route of [...reads, ...acts]) {
      const label = `${route.method} ${route.url(id)}`;
      expect((await call(undefined, route.method, route.url(id), route.body)).statusCode, label).toBe(401);
      expect((await call('service', route.method, route.url(id), route.body)).statusCode, label).toBe(403);
    }
  });

  it('lets viewers, operators and admins read', async () => {
    const { id } = await declareIncident(service.db.sql, { title: 'reads', severity: 'P3' }, alice);
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      for (const route of reads) {
        const response = await call(role, route.method, route.url(id));
        expect(response.statusCode, `${role} ${route.url(id)}: ${response.body}`).toBe(route.ok);
      }
    }
  });

  it('refuses viewers (403, nothing changes) and lets operators and admins act', async () => {
    for (const role of ['operator', 'admin'] as const) {
      const { id } = await declareIncident(service.db.sql, { title: `acts ${role}`, severity: 'P3' }, alice);
      for (const route of acts) {
        const before = await counts();
        const refused = await call('viewer', route.method, route.url(id), route.body);
        expect(refused.statusCode, `viewer ${route.method} ${route.url(id)}`).toBe(403);
        expect(await counts()).toEqual(before);
        const response = await call(role, route.method, route.url(id), route.body);
        expect(response.statusCode, `${role} ${route.method} ${route.url(id)}: ${response.body}`).toBe(
          route.ok,
        );
      }
    }
  });
});

describe('incident routes: the record', () => {
  it('declares, shows roles, the newest events and a link to the timeline, and pages the timeline by id', async () => {
    const declared = await call('operator', 'POST', '/internal/incidents', {
      title: 'payouts stuck',
      severity: 'P1',
      components: ['payouts', 'stellar'],
      impact: 'payouts late by 20 min',
    });
    expect(declared.statusCode, declared.body).toBe(201);
    const incident = declared.json();
    expect(incident).toMatchObject({
      title: 'payouts stuck',
      severity: 'P1',
      status: 'investigating',
      components: ['payouts', 'stellar'],
      declaredBy: 'operator-user',
      acknowledgedBy: 'operator-user',
    });
    expect(incident.targets.respond).toMatchObject({ targetSeconds: 900, met: true });
    const base = `/internal/incidents/${incident.id}`;
    await call('operator', 'PUT', `${base}/roles/commander`, { subject: 'ana' });
    await call('operator', 'PUT', `${base}/roles/commander`, { subject: 'bo' });
    await call('operator', 'PUT', `${base}/roles/communications`, { subject: 'cy' });
    for (let index = 0; index < 25; index++) {
      expect((await call('operator', 'POST', `${base}/notes`, { text: `note ${index}` })).statusCode).toBe(
        201,
      );
    }
    const shown = (await call('viewer', 'GET', base)).json();
    expect(shown.incident.id).toBe(incident.id);
    expect(
      shown.roles.map((role: { subject: string; renouncedAt: string | null }) => [
        role.subject,
        role.renouncedAt === null,
      ]),
    ).toEqual([
      ['ana', false],
      ['bo', true],
      ['cy', true],
    ]);
    // declared, 3 role_assumed, 1 role_renounced, 25 notes.
    expect(shown.timeline.count).toBe(30);
    expect(shown.timeline.recent).toHaveLength(20);
    expect(shown.timeline.recent.at(-1).summary).toBe('note 24');
    expect(shown.timeline.href).toBe(`${base}/timeline`);
    expect(shown.snapshots).toEqual([]);
    // A P1: a status-page update due at once, and an internal update every 15 minutes (notes push it on).
    expect(
      shown.reminders.map((reminder: { kind: string; overdue: boolean }) => [
        reminder.kind,
        reminder.overdue,
      ]),
    ).toEqual([
      ['status_page_update', true],
      ['internal_update', false],
    ]);

    const first = (await call('viewer', 'GET', `${base}/timeline?limit=12`)).json();
    expect(first.items).toHaveLength(12);
    expect(first.items[0].kind).toBe('declared');
    const second = (await call('viewer', 'GET', `${base}/timeline?limit=12&after=${first.nextAfter}`)).json();
    const third = (await call('viewer', 'GET', `${base}/timeline?limit=12&after=${second.nextAfter}`)).json();
    expect(third.items).toHaveLength(6);
    expect(third.nextAfter).toBeNull();
    const ids = [...first.items, ...second.items, ...third.items].map((event: { id: string }) => event.id);
    expect(new Set(ids).size).toBe(30);
  });

  it('walks the status machine and refuses what it does not list with a 409 problem', async () => {
    const { id } = await declareIncident(service.db.sql, { title: 'status', severity: 'P2' }, alice);
    const base = `/internal/incidents/${id}`;
    const resolved = await call('operator', 'POST', `${base}/status`, { to: 'resolved', reason: 'fixed' });
    expect(resolved.json()).toMatchObject({
      status: 'resolved',
      statusReason: 'a person declared the impact over: fixed',
    });
    const before = await counts();
    const illegal = await call('operator', 'POST', `${base}/status`, { to: 'monitoring' });
    expect(illegal.statusCode).toBe(409);
    expect(illegal.headers['content-type']).toContain('application/problem+json');
    expect(illegal.json().type).toBe('incidents/illegal-transition');
    const severity = await call('operator', 'POST', `${base}/severity`, { severity: 'P0' });
    expect(severity.json().type).toBe('incidents/resolved');
    expect(await counts()).toEqual(before);
    const reopened = await call('admin', 'POST', `${base}/status`, { to: 'investigating', reason: 'back' });
    expect(reopened.json()).toMatchObject({ status: 'investigating', reopenedCount: 1 });
  });

  it('lists newest first, filtered, cursor-paged, with a bounded page size', async () => {
    const sql = service.db.sql;
    const mine = [];
    for (let index = 0; index < 3; index++) {
      mine.push(await declareIncident(sql, { title: `list ${index}`, severity: 'P0' }, alice));
    }
    await call('operator', 'POST', `/internal/incidents/${mine[0]?.id}/status`, { to: 'resolved' });
    const open = (await call('viewer', 'GET', '/internal/incidents?severity=P0&open=true&limit=1')).json();
    expect(open.items.map((item: { id: string }) => item.id)).toEqual([mine[2]?.id]);
    const next = (
      await call(
        'viewer',
        'GET',
        `/internal/incidents?severity=P0&open=true&limit=1&cursor=${open.nextCursor}`,
      )
    ).json();
    expect(next.items.map((item: { id: string }) => item.id)).toEqual([mine[1]?.id]);
    const resolved = (await call('viewer', 'GET', '/internal/incidents?status=resolved&severity=P0')).json();
    expect(resolved.items.map((item: { id: string }) => item.id)).toEqual([mine[0]?.id]);
    const tooMany = await call('viewer', 'GET', '/internal/incidents?limit=201');
    expect(tooMany.statusCode).toBe(400);
  });
});

describe('incident routes: bad input', () => {
  it('answers a problem and changes no row', async () => {
    const { id } = await declareIncident(service.db.sql, { title: 'bad input', severity: 'P3' }, alice);
    const base = `/internal/incidents/${id}`;
    const cases: [Method, string, unknown, number][] = [
      ['POST', '/internal/incidents', { title: '', severity: 'P1' }, 400],
      ['POST', '/internal/incidents', { title: 'x', severity: 'P9' }, 400],
      ['POST', '/internal/incidents', { title: 'x', severity: 'P1', components: Array(21).fill('c') }, 400],
      ['POST', '/internal/incidents', { title: 'a\u0000b', severity: 'P1' }, 400],
      ['POST', '/internal/incidents', { title: 'x', severity: 'P1', extra: 1 }, 400],
      ['PATCH', base, {}, 400],
      ['PATCH', base, { title: 'x'.repeat(201) }, 400],
      ['POST', `${base}/status`, { to: 'done' }, 400],
      ['POST', `${base}/severity`, { severity: 'P1', reason: '' }, 400],
      ['PUT', `${base}/roles/scribe`, { subject: 'ana' }, 400],
      ['PUT', `${base}/roles/commander`, {}, 400],
      ['POST', `${base}/notes`, { text: 'x'.repeat(2_001) }, 400],
      ['POST', '/internal/incidents/not-a-uuid/notes', { text: 'x' }, 400],
      ['GET', `${base}/timeline?after=-1`, undefined, 400],
      ['GET', `${base}/timeline?limit=501`, undefined, 400],
      ['GET', '/internal/incidents?cursor=bm90IGEgY3Vyc29y', undefined, 400],
      ['POST', `/internal/incidents/${unknownId}/notes`, { text: 'x' }, 404],
      ['POST', `/internal/incidents/${unknownId}/status`, { to: 'resolved' }, 404],
      ['GET', `/internal/incidents/${unknownId}`, undefined, 404],
      ['GET', `/internal/incidents/${unknownId}/timeline`, undefined, 404],
    ];
    const before = await counts();
    for (const [method, url, body, status] of cases) {
      const response = await call('operator', method, url, body);
      const label = `${method} ${url} ${JSON.stringify(body)}`;
      expect(response.statusCode, `${label}: ${response.body}`).toBe(status);
      expect(response.headers['content-type'], label).toContain('application/problem+json');
      if (status === 404) expect(response.json().type, label).toBe('incidents/not-found');
    }
    expect(await counts()).toEqual(before);
  });
});
