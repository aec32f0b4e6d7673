import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/support/db.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { connect } from '../platform/db/connect.ts';
import type { Sql } from '../platform/db/types.ts';
import { createLogger } from '../platform/logging.ts';
import { registry } from '../platform/metrics.ts';
import { getEscalationSteps, setEscalationPolicy } from './escalation.ts';
import { runEscalations } from './escalation-runner.ts';
import { changeSeverity, changeStatus, declareIncident, getTimeline } from './service.ts';

/**
 * Acceptance 2: escalation with a controllable clock. The runner takes `now`; incidents are
 * declared at the real time and the runner is called at declared_at plus the step's offset.
 */

let service: TestService;
const alice = { name: 'alice', requestId: undefined };
const admin = { name: 'admin-user', requestId: undefined };
const silent = createLogger('silent');
const minute = 60_000;

beforeAll(async () => {
  service = await startTestService({ db: await createTestDatabase() });
});

afterAll(async () => {
  await service.close();
});

function deps(sql: Sql = service.db.sql) {
  return { sql, logger: silent, webhook: false };
}

function at(declaredAt: string, minutes: number): Date {
  return new Date(Date.parse(declaredAt) + minutes * minute);
}

async function escalations(id: string) {
  return (await getTimeline(service.db.sql, id, undefined, 500)).filter((event) =>
    ['escalation_step', 'escalation_step_missed'].includes(event.kind),
  );
}

async function missedCount(): Promise<number> {
  const metric = await registry.getSingleMetric('incident_escalation_steps_missed_total')?.get();
  return metric?.values[0]?.value ?? 0;
}

describe('escalation with a controllable clock', () => {
  it('fires each step of a P0 at its time and once, to the targets of the policy in force', async () => {
    const incident = await declareIncident(service.db.sql, { title: 'horizon down', severity: 'P0' }, alice);
    const steps = await getEscalationSteps(service.db.sql, incident.id, undefined, 50);
    expect(steps.map((step) => [step.position, step.target, step.afterSeconds, step.state])).toEqual([
      [1, 'engineering_lead', 1800, 'pending'],
      [2, 'cto', 3600, 'pending'],
      [4, 'ceo', 14400, 'pending'],
    ]);
    expect(steps[0]?.dueAt).toBe(at(incident.declaredAt, 30).toISOString());
    await runEscalations(deps(), at(incident.declaredAt, 29.9));
    expect(await escalations(incident.id)).toEqual([]);
    await runEscalations(deps(), at(incident.declaredAt, 30));
    await runEscalations(deps(), at(incident.declaredAt, 31));
    const first = await escalations(incident.id);
    expect(first.map((event) => [event.kind, event.source, event.detail.target])).toEqual([
      ['escalation_step', 'escalation', 'engineering_lead'],
    ]);
    await runEscalations(deps(), at(incident.declaredAt, 61));
    expect((await escalations(incident.id)).map((event) => event.detail.target)).toEqual([
      'engineering_lead',
      'cto',
    ]);
  });

  it('runs each due step exactly once when several runners on separate connections race', async () => {
    const sql = service.db.sql;
    const incidents = await Promise.all(
      Array.from({ length: 6 }, (_, index) =>
        declareIncident(sql, { title: `race ${index}`, severity: 'P0' }, alice),
      ),
    );
    const connections = Array.from({ length: 4 }, () =>
      connect({ url: service.db.url, poolMax: 2, logger: silent }),
    );
    try {
      const now = at(incidents.at(-1)?.declaredAt ?? '', 65);
      const results = await Promise.all(
        connections.map((connection) => runEscalations(deps(connection), now)),
      );
      expect(results.reduce((sum, result) => sum + result.stepsRun, 0)).toBe(incidents.length * 2);
      for (const incident of incidents) {
        const ran = (await escalations(incident.id)).filter((event) => event.kind === 'escalation_step');
        expect(ran.map((event) => event.detail.target)).toEqual(['engineering_lead', 'cto']);
      }
      const again = await runEscalations(deps(), now);
      expect(again.stepsRun).toBe(0);
    } finally {
      await Promise.all(connections.map((connection) => connection.end()));
    }
  });

  it('keeps a running incident on the policy it was declared under when the policy is edited', async () => {
    const sql = service.db.sql;
    const before = await declareIncident(sql, { title: 'before the edit', severity: 'P1' }, alice);
    const edited = await setEscalationPolicy(
      sql,
      {
        steps: [{ severities: ['P1'], afterSeconds: 600, target: 'payments_lead' }],
        reason: 'page the payments lead sooner',
      },
      admin,
    );
    expect(edited.steps).toHaveLength(1);
    const after = await declareIncident(sql, { title: 'after the edit', severity: 'P1' }, alice);
    await runEscalations(deps(), at(after.declaredAt, 11));
    expect(await escalations(before.id)).toEqual([]);
    expect((await escalations(after.id)).map((event) => event.detail.target)).toEqual(['payments_lead']);
    // The earlier incident escalates on its own (default) policy, and moves to P0 on it too.
    await changeSeverity(sql, before.id, 'P0', 'wider than thought', alice);
    await runEscalations(deps(), at(before.declaredAt, 31));
    expect((await escalations(before.id)).map((event) => event.detail.target)).toEqual(['engineering_lead']);
    const steps = await getEscalationSteps(sql, before.id, undefined, 50);
    expect(steps.find((step) => step.position === 3)?.state).toBe('cancelled');
    await setEscalationPolicy(
      sql,
      {
        steps: [
          { severities: ['P0'], afterSeconds: 1800, target: 'engineering_lead' },
          { severities: ['P0'], afterSeconds: 3600, target: 'cto' },
          { severities: ['P1'], afterSeconds: 7200, target: 'engineering_lead' },
          { severities: ['P0', 'P1'], afterSeconds: 14400, target: 'ceo' },
        ],
        reason: 'back to seed 004',
      },
      admin,
    );
  });

  it('stops escalating a resolved incident, and escalates a reopened one from the reopening', async () => {
    const sql = service.db.sql;
    const incident = await declareIncident(sql, { title: 'resolved quickly', severity: 'P0' }, alice);
    await changeStatus(sql, incident.id, 'resolved', 'fixed', alice);
    const cancelled = await getEscalationSteps(sql, incident.id, undefined, 50);
    expect(cancelled.map((step) => step.stateReason)).toEqual(Array(3).fill('incident resolved'));
    await runEscalations(deps(), at(incident.declaredAt, 300));
    expect(await escalations(incident.id)).toEqual([]);
    const steps = await getEscalationSteps(sql, incident.id, undefined, 50);
    expect(steps.map((step) => step.state)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    const reopened = await changeStatus(sql, incident.id, 'investigating', 'came back', alice);
    await runEscalations(deps(), at(reopened.updatedAt, 29));
    expect(await escalations(incident.id)).toEqual([]);
    await runEscalations(deps(), at(reopened.updatedAt, 31));
    expect((await escalations(incident.id)).map((event) => event.detail.target)).toEqual([
      'engineering_lead',
    ]);
  });

  it('records a step run more than 5 minutes late as missed, on the timeline and in the metric', async () => {
    // Cancelled first: the runner is global, and other tests' incidents have steps due by then.
    await service.db.sql`update incident_escalation_steps set state = 'cancelled', state_reason = 'test',
      cancelled_at = now() where state = 'pending'`;
    const incident = await declareIncident(
      service.db.sql,
      { title: 'worker was down', severity: 'P1' },
      alice,
    );
    const missedBefore = await missedCount();
    await runEscalations(deps(), at(incident.declaredAt, 126));
    const events = await escalations(incident.id);
    expect(events.map((event) => event.kind)).toEqual(['escalation_step', 'escalation_step_missed']);
    expect(events[1]?.detail.lateSeconds).toBe(360);
    expect(await missedCount()).toBe(missedBefore + 1);
    const [step] = await getEscalationSteps(service.db.sql, incident.id, undefined, 1);
    expect(step?.state).toBe('missed');
  });

  it('counts a step run within 5 minutes of its due time as done, not missed', async () => {
    const incident = await declareIncident(
      service.db.sql,
      { title: 'worker was slow', severity: 'P1' },
      alice,
    );
    const missedBefore = await missedCount();
    await runEscalations(deps(), at(incident.declaredAt, 125));
    expect((await escalations(incident.id)).map((event) => event.kind)).toEqual(['escalation_step']);
    expect(await missedCount()).toBe(missedBefore);
  });
});

describe('escalation notifications', () => {
  it('writes one log line per step, with the incident as it is when the step runs', async () => {
    const sql = service.db.sql;
    await sql`update incident_escalation_steps set state = 'cancelled', state_reason = 'test',
      cancelled_at = now() where state = 'pending'`;
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const incident = await declareIncident(sql, { title: 'deposits missing', severity: 'P0' }, alice);
    await changeStatus(sql, incident.id, 'identified', 'provider outage', alice);
    await runEscalations(
      { sql, logger: createLogger('info', sink), webhook: false },
      at(incident.declaredAt, 61),
    );
    const stepLines = lines.filter((line) => String(line.msg).startsWith('incident escalation step'));
    expect(stepLines.map((line) => [line.target, line.status, line.incidentId])).toEqual([
      ['engineering_lead', 'identified', incident.id],
      ['cto', 'identified', incident.id],
    ]);
  });
});

describe('the escalation policy', () => {
  it('refuses steps of a severity listed out of firing order, and stores nothing', async () => {
    const sql = service.db.sql;
    const [{ versions: before } = { versions: 0 }] = await sql<{ versions: number }[]>`
      select count(*)::int as versions from incident_escalation_policies`;
    await expect(
      setEscalationPolicy(
        sql,
        {
          steps: [
            { severities: ['P0'], afterSeconds: 3600, target: 'cto' },
            { severities: ['P0', 'P1'], afterSeconds: 1800, target: 'engineering_lead' },
          ],
          reason: 'wrong order',
        },
        admin,
      ),
    ).rejects.toMatchObject({ type: 'incidents/escalation-policy-invalid' });
    const [{ versions: after } = { versions: 0 }] = await sql<{ versions: number }[]>`
      select count(*)::int as versions from incident_escalation_policies`;
    expect(after).toBe(before);
  });
});
