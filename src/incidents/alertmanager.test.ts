import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { ConfigError, loadConfig } from '../platform/config.ts';
import { alertsPerNotificationMax, type IntakeOutcome, severityOf } from './alertmanager.ts';
import { changeStatus, getIncident, getTimeline } from './service.ts';

/**
 * POST /internal/alertmanager through fastify inject, with the shared secret as Alertmanager's
 * `http_config.authorization` sends it: what opens an incident, what is added, and what changes
 * nothing (repeats, stale and out-of-order notices, concurrent duplicates, bad payloads).
 */

let service: TestService;
const secret = randomBytes(32).toString('base64url');
const person = { name: 'oncall-olga', requestId: undefined };

beforeAll(async () => {
  service = await startTestService({ env: { ALERTMANAGER_WEBHOOK_TOKEN: secret } });
});

afterAll(async () => {
  await service?.close();
});

type Alert = {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
  fingerprint: string;
};

function alert(
  name: string,
  fingerprint: string,
  startsAt: string,
  status: Alert['status'] = 'firing',
  labels: Record<string, string> = {},
): Alert {
  return {
    status,
    labels: { alertname: name, severity: 'page', ...labels },
    annotations: { summary: `${name} summary`, description: `${name} description` },
    startsAt,
    endsAt:
      status === 'firing' ? '0001-01-01T00:00:00Z' : new Date(Date.parse(startsAt) + 60_000).toISOString(),
    generatorURL: 'http://prometheus.invalid/graph',
    fingerprint,
  };
}

function notification(groupKey: string, alerts: Alert[], extra: Record<string, unknown> = {}) {
  return {
    version: '4',
    groupKey,
    truncatedAlerts: 0,
    status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    receiver: 'settledesk',
    groupLabels: { alertname: alerts[0]?.labels.alertname ?? 'none' },
    commonLabels: {},
    commonAnnotations: {},
    externalURL: 'http://alertmanager.invalid',
    alerts,
    ...extra,
  };
}

async function deliver(body: unknown, token: string | null = secret) {
  return service.app.inject({
    method: 'POST',
    url: '/internal/alertmanager',
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    payload: body as Record<string, unknown>,
  });
}

async function deliverOk(body: unknown) {
  const response = await deliver(body);
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as IntakeOutcome;
}

/** Incidents of a group, timeline events and audit rows: what a no-op must leave as they are. */
async function counts(groupKey: string) {
  const [row] = await service.db.sql<
    { incidents: number; timeline: number; audit: number; records: number }[]
  >`
    select
      (select count(distinct incident_id)::int from alertmanager_alerts where group_key = ${groupKey}::text) as incidents,
      (select count(*)::int from incident_timeline) as timeline,
      (select count(*)::int from audit_log) as audit,
      (select count(*)::int from alertmanager_alerts where group_key = ${groupKey}::text) as records`;
  return row;
}

async function kinds(incidentId: string) {
  return (await getTimeline(service.db.sql, incidentId, undefined, 100)).map((event) => event.kind);
}

const groupKey = () => `{}:{alertname="${randomUUID()}"}`;
const t0 = '2026-12-06T05:00:00Z';
const t1 = '2026-12-06T05:10:00Z';

describe('Alertmanager intake', () => {
  it('a firing group opens an incident from its alert: severity by label, title from summary, components, unacknowledged', async () => {
    const key = groupKey();
    const outcome = await deliverOk(
      notification(key, [alert('LedgerImbalance', 'f1', t0, 'firing', { component: 'ledger' })]),
    );
    expect(outcome).toMatchObject({ incidentOpened: true, firingAdded: 1, unchanged: 0 });
    const incident = await getIncident(service.db.sql, outcome.incidentId ?? '');
    expect(incident).toMatchObject({
      title: 'LedgerImbalance summary',
      severity: 'P0',
      components: ['ledger'],
      impact: 'LedgerImbalance description',
      source: 'alertmanager',
      declaredBy: 'alertmanager',
      acknowledgedAt: null,
      status: 'investigating',
    });
    const timeline = await getTimeline(service.db.sql, incident.id, undefined, 100);
    expect(timeline.map((event) => event.kind)).toEqual(['declared', 'alert_firing']);
    expect(timeline[1]).toMatchObject({
      source: 'alertmanager',
      actor: 'alertmanager',
      summary: 'LedgerImbalance firing: LedgerImbalance summary',
      detail: { fingerprint: 'f1', startsAt: t0, groupKey: key, receiver: 'settledesk' },
    });
    const [audit] = await service.db.sql<{ count: number }[]>`
      select count(*)::int as count from audit_log
      where subject_id = ${incident.id}::text and action = 'incident.alert_firing'`;
    expect(audit?.count).toBe(1);
  });

  it('a repeated notification changes nothing', async () => {
    const key = groupKey();
    const body = notification(key, [alert('A', 'f1', t0)]);
    await deliverOk(body);
    const before = await counts(key);
    const again = await deliverOk(body);
    expect(again).toMatchObject({ incidentOpened: false, firingAdded: 0, unchanged: 1 });
    expect(await counts(key)).toEqual(before);
  });

  it('a new firing alert of a group with an open incident is added to it; a resolved one adds alert_resolved once and leaves it open', async () => {
    const key = groupKey();
    const first = await deliverOk(notification(key, [alert('A', 'f1', t0)]));
    const second = await deliverOk(notification(key, [alert('A', 'f1', t0), alert('A', 'f2', t1)]));
    expect(second).toMatchObject({
      incidentId: first.incidentId,
      incidentOpened: false,
      firingAdded: 1,
      unchanged: 1,
    });
    const resolved = notification(key, [alert('A', 'f1', t0, 'resolved'), alert('A', 'f2', t1)]);
    expect(await deliverOk(resolved)).toMatchObject({ resolvedAdded: 1, unchanged: 1 });
    const before = await counts(key);
    expect(await deliverOk(resolved)).toMatchObject({ resolvedAdded: 0, unchanged: 2 });
    expect(await counts(key)).toEqual(before);
    const id = first.incidentId ?? '';
    expect(await kinds(id)).toEqual(['declared', 'alert_firing', 'alert_firing', 'alert_resolved']);
    const allResolved = notification(key, [
      alert('A', 'f1', t0, 'resolved'),
      alert('A', 'f2', t1, 'resolved'),
    ]);
    expect(await deliverOk(allResolved)).toMatchObject({ resolvedAdded: 1, unchanged: 1 });
    expect((await getIncident(service.db.sql, id)).status).toBe('investigating');
  });

  it('a resolved alert never seen firing is recorded, opens nothing, and makes its late firing a no-op', async () => {
    const key = groupKey();
    const timelineBefore = (await counts(key))?.timeline;
    const outcome = await deliverOk(notification(key, [alert('B', 'f1', t0, 'resolved')]));
    expect(outcome).toEqual({
      incidentId: null,
      incidentOpened: false,
      firingAdded: 0,
      resolvedAdded: 0,
      resolvedUnknown: 1,
      unchanged: 0,
      truncatedRecorded: false,
    });
    expect(await deliverOk(notification(key, [alert('B', 'f1', t0, 'resolved')]))).toMatchObject({
      resolvedUnknown: 0,
      unchanged: 1,
    });
    const late = await deliverOk(notification(key, [alert('B', 'f1', t0)]));
    expect(late).toMatchObject({ incidentId: null, incidentOpened: false, firingAdded: 0, unchanged: 1 });
    const after = await counts(key);
    expect(after).toMatchObject({ incidents: 0, records: 1, timeline: timelineBefore });
  });

  it('a firing older than the latest episode of its fingerprint arrives out of order and changes nothing', async () => {
    const key = groupKey();
    const newer = await deliverOk(notification(key, [alert('C', 'f1', t1)]));
    const before = await counts(key);
    const older = await deliverOk(notification(key, [alert('C', 'f1', t0)]));
    expect(older).toMatchObject({ incidentId: newer.incidentId, firingAdded: 0, unchanged: 1 });
    expect(await counts(key)).toEqual(before);
  });

  it('after a person resolved the incident, a repeat is a no-op and a new firing opens a new incident', async () => {
    const key = groupKey();
    const first = await deliverOk(notification(key, [alert('D', 'f1', t0)]));
    await changeStatus(service.db.sql, first.incidentId ?? '', 'resolved', 'fixed', person);
    expect(await deliverOk(notification(key, [alert('D', 'f1', t0)]))).toMatchObject({
      incidentOpened: false,
      unchanged: 1,
    });
    const next = await deliverOk(notification(key, [alert('D', 'f1', t0), alert('D', 'f1', t1)]));
    expect(next).toMatchObject({ incidentOpened: true, firingAdded: 1, unchanged: 1 });
    expect(next.incidentId).not.toBe(first.incidentId);
    expect((await getIncident(service.db.sql, first.incidentId ?? '')).status).toBe('resolved');
    // The first episode's resolution belongs to the incident it fired in, resolved or not.
    await deliverOk(notification(key, [alert('D', 'f1', t0, 'resolved')]));
    expect(await kinds(first.incidentId ?? '')).toEqual([
      'declared',
      'alert_firing',
      'status_changed',
      'alert_resolved',
    ]);
    expect(await kinds(next.incidentId ?? '')).toEqual(['declared', 'alert_firing']);
  });

  it('concurrent deliveries of one group open one incident and record each alert once', async () => {
    const key = groupKey();
    // The group exists before (a resolved alert never seen firing), so its row lock, not the
    // insert of a new group row, is what keeps the deliveries apart.
    await deliverOk(notification(key, [alert('E', 'f0', t0, 'resolved')]));
    const body = notification(key, [alert('E', 'f1', t0), alert('E', 'f2', t0)]);
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => deliverOk(body)));
    expect(outcomes.filter((outcome) => outcome.incidentOpened)).toHaveLength(1);
    expect(new Set(outcomes.map((outcome) => outcome.incidentId)).size).toBe(1);
    expect(outcomes.reduce((sum, outcome) => sum + outcome.firingAdded, 0)).toBe(2);
    expect(await kinds(outcomes[0]?.incidentId ?? '')).toEqual(['declared', 'alert_firing', 'alert_firing']);
  });

  it('records truncatedAlerts on the incident once per count', async () => {
    const key = groupKey();
    const body = notification(key, [alert('F', 'f1', t0)], { truncatedAlerts: 3 });
    const first = await deliverOk(body);
    expect(first).toMatchObject({ incidentOpened: true, truncatedRecorded: true });
    expect(await deliverOk(body)).toMatchObject({ truncatedRecorded: false, unchanged: 1 });
    const events = await getTimeline(service.db.sql, first.incidentId ?? '', undefined, 100);
    expect(events.filter((event) => event.kind === 'alerts_truncated')).toHaveLength(1);
    expect(events.find((event) => event.kind === 'alerts_truncated')?.detail).toMatchObject({
      truncatedAlerts: 3,
    });
  });

  it('maps the severity label as ops/README.md does (critical to P1), unlisted values to P3; the most severe alert opens', async () => {
    const key = groupKey();
    const outcome = await deliverOk(
      notification(key, [
        alert('G', 'f1', t0, 'firing', { severity: 'warning' }),
        alert('G', 'f2', t0, 'firing', { severity: 'critical' }),
      ]),
    );
    expect((await getIncident(service.db.sql, outcome.incidentId ?? '')).severity).toBe('P1');
    const map = loadConfig({ ALERTMANAGER_SEVERITY_MAP: 'page:P0,ticket:P3' }).alertmanager.severityMap;
    expect(severityOf(map, alert('H', 'f1', t0, 'firing', { severity: 'page' }))).toBe('P0');
    expect(severityOf(map, alert('H', 'f1', t0, 'firing', { severity: 'other' }))).toBe('P3');
    const defaults = service.runtime.config.alertmanager.severityMap;
    expect(severityOf(defaults, alert('H', 'f1', t0, 'firing', { severity: 'page' }))).toBe('P0');
    expect(severityOf(defaults, alert('H', 'f1', t0, 'firing', { severity: 'warning' }))).toBe('P2');
    expect(severityOf(defaults, alert('H', 'f1', t0, 'firing', { severity: 'info' }))).toBe('P3');
    expect(severityOf({ '*': 'P0' }, alert('H', 'f1', t0, 'firing', { severity: 'x' }))).toBe('P0');
  });

  it('refuses a wrong or missing token with 401 and staff tokens with 403; a service token acts as its subject', async () => {
    const key = groupKey();
    const body = notification(key, [alert('I', 'f1', t0)]);
    const before = await counts(key);
    expect((await deliver(body, `${secret}x`)).statusCode).toBe(401);
    expect((await deliver(body, randomBytes(32).toString('base64url'))).statusCode).toBe(401);
    expect((await deliver(body, null)).statusCode).toBe(401);
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      expect((await deliver(body, await service.token(role))).statusCode).toBe(403);
    }
    expect(await counts(key)).toEqual(before);
    const response = await deliver(body, await service.token('service', 'alertmanager-svc'));
    expect(response.statusCode).toBe(200);
    const timeline = await getTimeline(service.db.sql, response.json().incidentId, undefined, 10);
    expect(timeline.map((event) => event.actor)).toEqual(['alertmanager-svc', 'alertmanager-svc']);
  });

  it('accepts the shared secret on this route only', async () => {
    for (const url of ['/internal/incident/summary', '/internal/modes']) {
      const response = await service.app.inject({
        method: 'GET',
        url,
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(response.statusCode, url).toBe(401);
    }
  });

  it('refuses a payload that is not version 4 or over its bounds with 400, changing nothing', async () => {
    const key = groupKey();
    const before = await counts(key);
    const bad = [
      notification(key, [alert('J', 'f1', t0)], { version: '3' }),
      notification(key, [{ ...alert('J', 'f1', t0), startsAt: 'yesterday' }]),
      notification(key, [{ ...alert('J', 'f1', t0), fingerprint: 'x'.repeat(65) }]),
      notification(
        key,
        Array.from({ length: alertsPerNotificationMax + 1 }, (_, index) => alert('J', `f${index}`, t0)),
      ),
      { ...notification(key, [alert('J', 'f1', t0)]), groupKey: undefined },
    ];
    for (const body of bad) {
      const response = await deliver(body);
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().type).toBe('request/validation');
    }
    expect(await counts(key)).toEqual(before);
    const extra = await deliverOk(
      notification(key, [{ ...alert('J', 'f1', t0), newField: 1 } as Alert], { other: true }),
    );
    expect(extra.firingAdded).toBe(1);
  });
});

describe('Alertmanager configuration', () => {
  it('refuses a short or malformed shared secret and a bad severity map, naming the variable', () => {
    for (const env of [
      { ALERTMANAGER_WEBHOOK_TOKEN: 'short' },
      { ALERTMANAGER_WEBHOOK_TOKEN: `${'a'.repeat(40)} with space` },
      { ALERTMANAGER_WEBHOOK_TOKEN: ['a', 'b', 'c'].map((c) => c.repeat(40)).join(',') },
      { ALERTMANAGER_SEVERITY_MAP: 'page:P5' },
      { ALERTMANAGER_SEVERITY_MAP: 'page=P1' },
    ]) {
      const name = Object.keys(env)[0] ?? '';
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(name);
    }
    const config = loadConfig({ ALERTMANAGER_WEBHOOK_TOKEN: `${'a'.repeat(32)},${'b'.repeat(32)}` });
    expect(config.alertmanager.webhookTokens).toEqual(['a'.repeat(32), 'b'.repeat(32)]);
    expect(loadConfig({}).alertmanager).toEqual({
      webhookTokens: [],
      severityMap: { page: 'P0', critical: 'P1', warning: 'P2' },
    });
  });
});
