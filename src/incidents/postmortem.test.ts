import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import type { Role } from '../platform/auth/roles.ts';
import { registry } from '../platform/metrics.ts';
import { actionItemsMax, addActionItem, changeActionItem, writePostmortem } from './postmortem.ts';
import { selectPostmortem } from './postmortem-data.ts';
import { countOverdueFrom } from './postmortem-metrics.ts';
import { changeStatus, declareIncident, getTimeline } from './service.ts';

let service: TestService;
const alice = { name: 'alice', requestId: undefined };

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

const day = (offsetDays: number) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);

async function declared(title = 'payouts slow'): Promise<string> {
  return (await declareIncident(service.db.sql, { title, severity: 'P1' }, alice)).id;
}

async function kinds(id: string): Promise<string[]> {
  return (await getTimeline(service.db.sql, id, undefined, 500)).map((event) => event.kind);
}

async function call(
  role: Role | undefined,
  method: 'GET' | 'POST' | 'PATCH' | 'PUT',
  url: string,
  payload?: Record<string, unknown>,
) {
  return service.app.inject({
    method,
    url,
    headers: role ? { authorization: `Bearer ${await service.token(role, `${role}-ana`)}` } : {},
    ...(payload === undefined ? {} : { payload }),
  });
}

/** Rows that any write of this feature would add to or change. */
async function footprint(id: string) {
  const sql = service.db.sql;
  const [row] = await sql<{ events: number; audits: number; postmortems: number; items: string }[]>`
    select
      (select count(*)::int from incident_timeline where incident_id = ${id}::uuid) as events,
      (select count(*)::int from audit_log where subject_id = ${id}) as audits,
      (select count(*)::int from incident_postmortems where incident_id = ${id}::uuid) as postmortems,
      (select coalesce(string_agg(status || owner || due_on || title || updated_at, ',' order by id), '')
         from incident_action_items where incident_id = ${id}::uuid) as items`;
  return row;
}

describe('action items', () => {
  it('walks open → done → open → cancelled, each change a timeline event, and refuses done → cancelled', async () => {
    const sql = service.db.sql;
    const id = await declared();
    const item = await addActionItem(sql, id, { title: 'alert on lag', owner: 'bob', dueOn: day(7) }, alice);
    expect(item).toMatchObject({ status: 'open', owner: 'bob', dueOn: day(7), overdue: false });
    const done = await changeActionItem(sql, id, item.id, { status: 'done', reason: 'merged' }, alice);
    expect(done).toMatchObject({ status: 'done', statusReason: 'the work is done: merged' });
    await expect(changeActionItem(sql, id, item.id, { status: 'cancelled' }, alice)).rejects.toMatchObject({
      type: 'incidents/action-item-illegal-transition',
    });
    await changeActionItem(sql, id, item.id, { status: 'open' }, alice);
    const again = await changeActionItem(sql, id, item.id, { status: 'open' }, alice);
    expect(again.status).toBe('open');
    await changeActionItem(sql, id, item.id, { status: 'cancelled', owner: 'carol' }, alice);
    expect(await kinds(id)).toEqual([
      'declared',
      'action_item_added',
      'action_item_updated',
      'action_item_updated',
      'action_item_updated',
    ]);
    const last = (await getTimeline(sql, id, undefined, 500)).at(-1);
    expect(last?.summary).toBe('action item alert on lag: status: open → cancelled; owner: bob → carol');
    await expect(changeActionItem(sql, id, randomUUID(), { status: 'done' }, alice)).rejects.toMatchObject({
      type: 'incidents/action-item-not-found',
    });
  });

  it('are allowed on a resolved incident', async () => {
    const sql = service.db.sql;
    const id = await declared();
    await changeStatus(sql, id, 'resolved', undefined, alice);
    const item = await addActionItem(
      sql,
      id,
      { title: 'write the runbook', owner: 'bob', dueOn: day(3) },
      alice,
    );
    await changeActionItem(sql, id, item.id, { status: 'done' }, alice);
    expect((await kinds(id)).slice(-2)).toEqual(['action_item_added', 'action_item_updated']);
  });

  it(`refuses the ${actionItemsMax + 1}th item of an incident and adds nothing`, async () => {
    const sql = service.db.sql;
    const id = await declared();
    await sql`
      insert into incident_action_items (id, incident_id, title, owner, due_on, status, status_reason,
        created_by, created_at, updated_at)
      select gen_random_uuid(), ${id}::uuid, 'item ' || n, 'bob', current_date, 'cancelled', 'added', 'alice', now(), now()
      from generate_series(1, ${actionItemsMax}::int) n`;
    const before = await footprint(id);
    await expect(
      addActionItem(sql, id, { title: 'one more', owner: 'bob', dueOn: day(1) }, alice),
    ).rejects.toMatchObject({ type: 'incidents/action-items-full' });
    expect(await footprint(id)).toEqual(before);
  });

  it('counts open items past their due day in incident_action_items_overdue, not done or future ones', async () => {
    const sql = service.db.sql;
    await sql`delete from incident_action_items`;
    const id = await declared();
    await addActionItem(sql, id, { title: 'late one', owner: 'bob', dueOn: day(-2) }, alice);
    await addActionItem(sql, id, { title: 'late two', owner: 'bob', dueOn: day(-1) }, alice);
    const finished = await addActionItem(
      sql,
      id,
      { title: 'late but done', owner: 'bob', dueOn: day(-1) },
      alice,
    );
    await changeActionItem(sql, id, finished.id, { status: 'done' }, alice);
    await addActionItem(sql, id, { title: 'due today', owner: 'bob', dueOn: day(0) }, alice);
    await addActionItem(sql, id, { title: 'not due', owner: 'bob', dueOn: day(5) }, alice);
    countOverdueFrom(sql);
    const metrics = await registry.getMetricsAsJSON();
    const gauge = metrics.find((metric) => metric.name === 'incident_action_items_overdue');
    expect(gauge?.values.map((value) => value.value)).toEqual([2]);
    const list = await call('viewer', 'GET', `/internal/incidents/${id}/action-items`);
    expect(
      list.json().items.map((item: { title: string; overdue: boolean }) => [item.title, item.overdue]),
    ).toEqual([
      ['late one', true],
      ['late two', true],
      ['late but done', false],
      ['due today', false],
      ['not due', false],
    ]);
  });
});

describe('the postmortem document', () => {
  it('is created once, empty, on the first move to resolved, and kept through a reopen and a second resolution', async () => {
    const sql = service.db.sql;
    const id = await declared();
    expect(await selectPostmortem(sql, id)).toBeUndefined();
    await changeStatus(sql, id, 'monitoring', undefined, alice);
    expect(await selectPostmortem(sql, id)).toBeUndefined();
    await changeStatus(sql, id, 'resolved', undefined, alice);
    const first = await selectPostmortem(sql, id);
    expect(first).toMatchObject({ rootCause: '', updatedBy: null });
    await writePostmortem(sql, id, { rootCause: 'a stale cache' }, alice);
    await changeStatus(sql, id, 'investigating', 'came back', alice);
    await changeStatus(sql, id, 'resolved', undefined, alice);
    const second = await selectPostmortem(sql, id);
    expect(second?.createdAt).toEqual(first?.createdAt);
    expect(second?.rootCause).toBe('a stale cache');
  });

  it('is created by the first edit before resolution; each edit that changes text is one audited postmortem_drafted event', async () => {
    const sql = service.db.sql;
    const id = await declared();
    const written = await writePostmortem(sql, id, { rootCause: 'x', lessonsLearned: 'y' }, alice);
    expect(written).toMatchObject({ rootCause: 'x', lessonsLearned: 'y', wentWell: '', updatedBy: 'alice' });
    await writePostmortem(sql, id, { rootCause: 'x' }, alice);
    await writePostmortem(sql, id, { wentWell: 'paging worked' }, alice);
    const events = (await getTimeline(sql, id, undefined, 500)).filter(
      (e) => e.kind === 'postmortem_drafted',
    );
    expect(events.map((event) => event.summary)).toEqual([
      'postmortem: wrote root cause, lessons learned',
      'postmortem: wrote what went well',
    ]);
    expect(events[1]?.detail).toEqual({
      parts: ['wentWell'],
      before: { wentWell: '' },
      after: { wentWell: 'paging worked' },
    });
    const [audit] = await sql<{ count: number }[]>`
      select count(*)::int as count from audit_log
      where subject_id = ${id} and action = 'incident.postmortem_drafted'`;
    expect(audit?.count).toBe(2);
  });
});

describe('post-incident routes', () => {
  it('let viewers read, operators and admins write, and refuse service tokens and anonymous callers', async () => {
    const id = await declared();
    const item = await addActionItem(service.db.sql, id, { title: 't', owner: 'o', dueOn: day(1) }, alice);
    const reads: [string, string][] = [
      ['GET', `/internal/incidents/${id}/action-items`],
      ['GET', `/internal/incidents/${id}/postmortem`],
      ['GET', `/internal/incidents/${id}/postmortem?format=json`],
    ];
    const writes: [string, string, Record<string, unknown>, number][] = [
      ['POST', `/internal/incidents/${id}/action-items`, { title: 'a', owner: 'b', dueOn: day(2) }, 201],
      ['PATCH', `/internal/incidents/${id}/action-items/${item.id}`, { owner: 'someone' }, 200],
      ['PUT', `/internal/incidents/${id}/postmortem`, { wentWrong: 'slow page' }, 200],
    ];
    for (const [method, url] of reads) {
      for (const role of ['viewer', 'operator', 'admin'] as const) {
        expect((await call(role, method as 'GET', url)).statusCode, `${role} ${url}`).toBe(200);
      }
      expect((await call('service', method as 'GET', url)).statusCode, url).toBe(403);
      expect((await call(undefined, method as 'GET', url)).statusCode, url).toBe(401);
    }
    for (const [method, url, payload, status] of writes) {
      const before = await footprint(id);
      for (const role of ['viewer', 'service'] as const) {
        expect((await call(role, method as 'POST', url, payload)).statusCode, `${role} ${url}`).toBe(403);
      }
      expect((await call(undefined, method as 'POST', url, payload)).statusCode, url).toBe(401);
      expect(await footprint(id)).toEqual(before);
      for (const role of ['operator', 'admin'] as const) {
        const response = await call(role, method as 'POST', url, {
          ...payload,
          owner: payload.owner && role,
        });
        expect(response.statusCode, `${role} ${url}: ${response.body}`).toBe(status);
      }
    }
  });

  it('refuse bad input with problem+json and change nothing', async () => {
    const id = await declared();
    const item = await addActionItem(service.db.sql, id, { title: 't', owner: 'o', dueOn: day(1) }, alice);
    const cases: [string, string, Record<string, unknown>, number, string][] = [
      [
        'POST',
        `/internal/incidents/${id}/action-items`,
        { title: 'a', owner: 'b', dueOn: '2026-02-30' },
        400,
        'request/validation',
      ],
      [
        'POST',
        `/internal/incidents/${id}/action-items`,
        { title: 'a\nb', owner: 'b', dueOn: day(1) },
        400,
        'request/validation',
      ],
      [
        'POST',
        `/internal/incidents/${id}/action-items`,
        { title: 'a', dueOn: day(1) },
        400,
        'request/validation',
      ],
      [
        'POST',
        `/internal/incidents/${randomUUID()}/action-items`,
        { title: 'a', owner: 'b', dueOn: day(1) },
        404,
        'incidents/not-found',
      ],
      ['PATCH', `/internal/incidents/${id}/action-items/${item.id}`, {}, 400, 'request/validation'],
      [
        'PATCH',
        `/internal/incidents/${id}/action-items/${item.id}`,
        { reason: 'no status to explain' },
        400,
        'request/validation',
      ],
      [
        'PATCH',
        `/internal/incidents/${id}/action-items/${item.id}`,
        { status: 'finished' },
        400,
        'request/validation',
      ],
      [
        'PATCH',
        `/internal/incidents/${id}/action-items/${randomUUID()}`,
        { status: 'done' },
        404,
        'incidents/action-item-not-found',
      ],
      ['PUT', `/internal/incidents/${id}/postmortem`, {}, 400, 'request/validation'],
      ['PUT', `/internal/incidents/${id}/postmortem`, { rootCause: 'a\u0000b' }, 400, 'request/validation'],
      [
        'PUT',
        `/internal/incidents/${id}/postmortem`,
        { rootCause: 'x'.repeat(10_001) },
        400,
        'request/validation',
      ],
      [
        'PUT',
        `/internal/incidents/${randomUUID()}/postmortem`,
        { rootCause: 'x' },
        404,
        'incidents/not-found',
      ],
    ];
    const before = await footprint(id);
    for (const [method, url, payload, status, type] of cases) {
      const response = await call('operator', method as 'POST', url, payload);
      expect(response.statusCode, `${method} ${url} ${JSON.stringify(payload)}`).toBe(status);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().type).toBe(type);
    }
    expect(await footprint(id)).toEqual(before);
    const unknown = await call('viewer', 'GET', `/internal/incidents/${randomUUID()}/postmortem`);
    expect(unknown.statusCode).toBe(404);
    const badFormat = await call('viewer', 'GET', `/internal/incidents/${id}/postmortem?format=pdf`);
    expect(badFormat.statusCode).toBe(400);
  });

  it('answers the draft as text/markdown, or JSON with format=json, and writes nothing', async () => {
    const sql = service.db.sql;
    const id = await declared('cache | stale');
    await changeStatus(sql, id, 'monitoring', undefined, alice);
    await addActionItem(sql, id, { title: 'add an alert', owner: 'bob', dueOn: day(2) }, alice);
    await writePostmortem(sql, id, { rootCause: 'a stale cache' }, alice);
    const before = await footprint(id);
    const markdown = await call('viewer', 'GET', `/internal/incidents/${id}/postmortem`);
    expect(markdown.statusCode).toBe(200);
    expect(markdown.headers['content-type']).toBe('text/markdown; charset=utf-8');
    expect(markdown.body).toMatch(/^# Postmortem: incident \d+: cache \\\| stale$/m);
    expect(markdown.body).toContain('a stale cache');
    const json = await call('viewer', 'GET', `/internal/incidents/${id}/postmortem?format=json`);
    expect(json.headers['content-type']).toContain('application/json');
    const body = json.json();
    expect(body).toMatchObject({
      incidentId: id,
      timelineLeftOut: 0,
      postmortem: { rootCause: 'a stale cache' },
    });
    expect(body.timelineEvents).toBe(4);
    expect(body.actionItems.map((item: { title: string }) => item.title)).toEqual(['add an alert']);
    expect(body.markdown.replace(/on .* UTC from/, '')).toBe(markdown.body.replace(/on .* UTC from/, ''));
    expect(await footprint(id)).toEqual(before);
    const fresh = await declared();
    const freshBefore = await footprint(fresh);
    expect((await call('viewer', 'GET', `/internal/incidents/${fresh}/postmortem`)).statusCode).toBe(200);
    expect(await footprint(fresh)).toEqual(freshBefore);
  });
});
