import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declareIncident } from '../../src/incidents/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { runCli } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db, { PII_REDACTION_NAMES: 'Ada Lovelace' });
});

afterAll(async () => {
  await db.drop();
});

describe('settledesk incident message', () => {
  it('previews, refuses personal data with what matched, publishes a clean message and lists it', async () => {
    const incident = await declareIncident(
      db.sql,
      { title: 'payouts slow', severity: 'P1', components: ['payouts'], impact: 'Payouts are late' },
      { name: 'cli-test', requestId: undefined },
    );
    const base = ['incident', 'message'];
    const template = ['--template', 'payment_delays', '--kind', 'customer', '--eta', '30m'];

    const preview = await runCli([...base, 'preview', incident.id, ...template], env);
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.stdout).toContain('We are having payment delays');
    expect(preview.stdout).toContain('some payouts are taking longer than usual');

    const dirty = ['--text', 'Ada Lovelace reported it', '--component', 'payouts=partial_outage'];
    const refusedPreview = await runCli([...base, 'preview', incident.id, ...dirty], env);
    expect(refusedPreview.code).toBe(1);
    expect(refusedPreview.stdout).toContain('personal_name in the body at 0: "Ada Lovelace"');
    const refused = await runCli([...base, 'publish', incident.id, ...dirty, '--as', 'ada'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('not published');
    expect(refused.stderr).toContain('"Ada Lovelace"');

    const published = await runCli(
      [
        '--json',
        ...base,
        'publish',
        incident.id,
        ...template,
        '--component',
        'payouts=degraded_performance',
        '--as',
        'bob',
      ],
      env,
    );
    expect(published.code, published.stderr).toBe(0);
    const message = JSON.parse(published.stdout);
    expect(message).toMatchObject({
      kind: 'customer',
      publishedBy: 'bob',
      components: [{ component: 'payouts', status: 'degraded_performance' }],
    });

    const listed = await runCli(['--json', ...base, 'list', incident.id], env);
    expect(JSON.parse(listed.stdout).map((item: { id: string }) => item.id)).toEqual([message.id]);

    const bad = await runCli(
      [...base, 'publish', incident.id, '--text', 'x', '--component', 'payouts=down'],
      env,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--component status must be one of');
  });
});
