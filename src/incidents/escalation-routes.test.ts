import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import type { Role } from '../platform/auth/roles.ts';
import { changeStatus, declareIncident } from './service.ts';

/**
 * The escalation and reminder routes: viewers read, operators close a reminder, admins replace the
 * policy; anonymous callers get 401, and a refused or invalid write changes nothing.
 */

let service: TestService;
let incidentId = '';
const alice = { name: 'alice', requestId: undefined };

const seedPolicy = {
  steps: [
    { severities: ['P0'], afterSeconds: 1800, target: 'engineering_lead' },
    { severities: ['P0'], afterSeconds: 3600, target: 'cto' },
    { severities: ['P1'], afterSeconds: 7200, target: 'engineering_lead' },
    { severities: ['P0', 'P1'], afterSeconds: 14400, target: 'ceo' },
  ],
};

beforeAll(async () => {
  service = await startTestService();
  const incident = await declareIncident(service.db.sql, { title: 'api down', severity: 'P0' }, alice);
  incidentId = incident.id;
});

afterAll(async () => {
  await service.close();
});

async function call(
  method: 'GET' | 'PUT' | 'POST',
  url: string,
  role: Role | undefined,
  payload?: Record<string, unknown>,
) {
  return service.app.inject({
    method,
    url,
    ...(payload === undefined ? {} : { payload }),
    headers: role === undefined ? {} : { authorization: `Bearer ${await service.token(role)}` },
  });
}

const policyUrl = '/internal/incident-policies/escalation';

describe('escalation routes', () => {
  it('let viewers read the policy, the frozen steps and the reminders, and nobody anonymous', async () => {
    const reads = [
      policyUrl,
      `/internal/incidents/${incidentId}/escalation-steps`,
      `/internal/incidents/${incidentId}/reminders`,
    ];
    for (const url of reads) {
      expect((await call('GET', url, 'viewer')).statusCode, url).toBe(200);
      expect((await call('GET', url, undefined)).statusCode, url).toBe(401);
    }
    expect((await call('GET', policyUrl, 'viewer')).json()).toMatchObject({ version: 1, ...seedPolicy });
    const steps = (
      await call('GET', `/internal/incidents/${incidentId}/escalation-steps?limit=2`, 'viewer')
    ).json();
    expect(steps.items.map((step: { target: string }) => step.target)).toEqual(['engineering_lead', 'cto']);
    const next = await call(
      'GET',
      `/internal/incidents/${incidentId}/escalation-steps?cursor=${steps.nextCursor}`,
      'viewer',
    );
    expect(next.json().items.map((step: { target: string }) => step.target)).toEqual(['ceo']);
  });

  it('let only admins replace the policy, audited, and refuse a policy out of order with nothing stored', async () => {
    const body = {
      steps: [{ severities: ['P1'], afterSeconds: 900, target: 'payments_lead' }],
      reason: 'page sooner',
    };
    for (const role of ['viewer', 'operator', 'service'] as const) {
      expect((await call('PUT', policyUrl, role, body)).statusCode, role).toBe(403);
    }
    const unordered = {
      steps: [
        { severities: ['P0'], afterSeconds: 3600, target: 'cto' },
        { severities: ['P0'], afterSeconds: 1800, target: 'engineering_lead' },
      ],
      reason: 'out of order',
    };
    const refused = await call('PUT', policyUrl, 'admin', unordered);
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ type: 'incidents/escalation-policy-invalid' });
    const tooShort = await call('PUT', policyUrl, 'admin', {
      steps: [{ severities: ['P0'], afterSeconds: 5, target: 'cto' }],
      reason: 'too soon',
    });
    expect(tooShort.statusCode).toBe(400);
    expect((await call('GET', policyUrl, 'viewer')).json().version).toBe(1);
    const stored = await call('PUT', policyUrl, 'admin', body);
    expect(stored.statusCode).toBe(200);
    expect(stored.json()).toMatchObject({ version: 2, createdBy: 'admin-user', ...body });
    const [audit] = await service.db.sql<{ action: string }[]>`
      select action from audit_log where subject_type = 'incident_escalation_policy' and subject_id = '2'`;
    expect(audit?.action).toBe('incident_policy.escalation_set');
    await call('PUT', policyUrl, 'admin', { ...seedPolicy, reason: 'back to seed 004' });
  });

  it('let operators, not viewers, close the postmortem-meeting reminder', async () => {
    await changeStatus(service.db.sql, incidentId, 'resolved', 'fixed', alice);
    const url = `/internal/incidents/${incidentId}/reminders/postmortem_meeting/done`;
    expect((await call('POST', url, 'viewer')).statusCode).toBe(403);
    expect((await call('POST', url, undefined)).statusCode).toBe(401);
    const done = await call('POST', url, 'operator');
    expect(done.statusCode).toBe(200);
    expect(done.json()).toEqual({ items: [] });
    const again = await call('POST', url, 'operator');
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ type: 'incidents/no-open-reminder' });
    expect(
      (await call('POST', `/internal/incidents/${incidentId}/reminders/internal_update/done`, 'operator'))
        .statusCode,
    ).toBe(400);
  });

  it('answer 404 for an incident that does not exist', async () => {
    const url = '/internal/incidents/00000000-0000-4000-8000-000000000000/reminders';
    const response = await call('GET', url, 'viewer');
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ type: 'incidents/not-found' });
  });
});
