import { randomUUID } from 'node:crypto';
import { Account, Keypair, MuxedAccount } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import type { Role } from '../platform/auth/roles.ts';
import type { PiiKind } from './pii.ts';
import { assignRole, changeDetails, changeStatus, declareIncident, getTimeline } from './service.ts';

/**
 * Acceptance 3 of issue 17: a message with personal data or a secret is refused (one test per
 * kind, each naming what matched) and changes nothing; a clean one is published with its timeline
 * event; the public status page needs no token and shows published status-page messages only.
 * And the role checks of the message routes, like the triage routes'.
 */

let service: TestService;
const alice = { name: 'alice', requestId: undefined };

beforeAll(async () => {
  service = await startTestService({
    env: { PII_REDACTION_NAMES: 'Ada Lovelace,Grace Hopper', STATUS_PAGE_COMPONENTS: 'api,payouts,deposits' },
  });
});

afterAll(async () => {
  await service?.close();
});

async function incident(title = 'payouts slow'): Promise<string> {
  const declared = await declareIncident(
    service.db.sql,
    { title, severity: 'P1', components: ['payouts'], impact: 'Some payouts take longer than usual' },
    alice,
  );
  return declared.id;
}

async function post(
  id: string,
  body: Record<string, unknown>,
  role: Role | 'none' = 'operator',
  subject?: string,
) {
  return service.app.inject({
    method: 'POST',
    url: `/internal/incidents/${id}/messages`,
    headers: role === 'none' ? {} : { authorization: `Bearer ${await service.token(role, subject)}` },
    payload: body,
  });
}

async function get(url: string, role: Role | 'none' = 'viewer') {
  return service.app.inject({
    method: 'GET',
    url,
    headers: role === 'none' ? {} : { authorization: `Bearer ${await service.token(role)}` },
  });
}

/** What a refused publish must leave untouched: messages, their components, the timeline, the audit log. */
async function written(id: string): Promise<Record<string, string>> {
  const [row] = await service.db.sql<Record<string, string>[]>`
    select
      (select count(*)::text from incident_messages where incident_id = ${id}::uuid) as messages,
      (select count(*)::text from incident_message_components) as components,
      (select count(*)::text from incident_timeline where incident_id = ${id}::uuid) as timeline,
      (select count(*)::text from audit_log) as audit`;
  return row ?? {};
}

const keypair = Keypair.random();
const planted: Record<PiiKind, string> = {
  email: 'jane.doe@example.org',
  phone: '+1 415 555 0132',
  stellar_address: keypair.publicKey(),
  stellar_muxed_address: new MuxedAccount(new Account(keypair.publicKey(), '0'), '7').accountId(),
  stellar_secret_key: keypair.secret(),
  transaction_hash: '3389e9f0f1a65f19736cacf544c2e825313e8447f569233bb8db39aa607c8889',
  uuid: randomUUID(),
  customer_ref: 'cus_9fA27',
  personal_name: 'Grace Hopper',
  bearer_token: 'Bearer sk4f9a8b7c6d5e4f3a2b1c0d',
  jwt: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJncmFjZSJ9.c2lnMTIzNDU2',
};

describe('publishing a message', () => {
  for (const [kind, value] of Object.entries(planted) as [PiiKind, string][]) {
    it(`refuses a message with ${kind.replaceAll('_', ' ')}, names the match, and writes nothing`, async () => {
      const id = await incident();
      const before = await written(id);
      const text = `Payouts are delayed. Contact ${value} for details.`;
      const response = await post(id, { kind: 'status_page', text });
      expect(response.statusCode).toBe(422);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json()).toMatchObject({
        type: 'incidents/pii-detected',
        matches: [{ field: 'body', kind, text: value, offset: text.indexOf(value) }],
      });
      expect(await written(id)).toEqual(before);
    });
  }

  it('refuses personal data in the title too, and in the incident fields a template renders', async () => {
    const id = await incident();
    const titled = await post(id, { kind: 'customer', title: 'For Ada Lovelace', text: 'Payouts are slow.' });
    expect(titled.json()).toMatchObject({
      type: 'incidents/pii-detected',
      matches: [{ field: 'title', kind: 'personal_name', text: 'Ada Lovelace', offset: 4 }],
    });
    await changeDetails(service.db.sql, id, { impact: 'Payouts of cust-88 are late' }, alice);
    const templated = await post(id, { kind: 'status_page', template: 'status_update', eta: soon() });
    expect(templated.json()).toMatchObject({
      type: 'incidents/pii-detected',
      matches: [{ field: 'body', kind: 'customer_ref', text: 'cust-88' }],
    });
  });

  it('publishes a clean message with its component statuses and a message_published timeline event', async () => {
    const id = await incident();
    const eta = soon();
    const response = await post(id, {
      kind: 'status_page',
      template: 'status_update',
      eta,
      components: [{ component: 'payouts', status: 'degraded_performance' }],
    });
    expect(response.statusCode, response.body).toBe(201);
    const message = response.json();
    expect(message).toMatchObject({
      incidentId: id,
      kind: 'status_page',
      status: 'investigating',
      template: 'status_update',
      title: 'payouts slow',
      publishedBy: 'operator-user',
      components: [{ component: 'payouts', status: 'degraded_performance' }],
      eta: new Date(eta).toISOString(),
    });
    expect(message.body).toBe(
      `Investigating: Some payouts take longer than usual. Affected: payouts. Next update by ${new Date(eta).toISOString().slice(11, 16)} UTC.`,
    );
    const timeline = await getTimeline(service.db.sql, id, undefined, 100);
    const event = timeline.find((item) => item.kind === 'message_published');
    expect(event).toMatchObject({
      id: message.timelineEventId,
      at: message.publishedAt,
      detail: { messageId: message.id, kind: 'status_page', status: 'investigating' },
    });
    const [audit] = await service.db.sql<{ count: string }[]>`
      select count(*)::text as count from audit_log
      where action = 'incident.message_published' and subject_id = ${id}`;
    expect(audit?.count).toBe('1');
    await expect(
      service.db.sql`update incident_messages set body = 'edited' where id = ${message.id}::uuid`,
    ).rejects.toThrow(/immutable/);
  });

  it('renders the customer message of the on-call runbook word for word', async () => {
    const id = await incident();
    const response = await post(id, { kind: 'customer', template: 'payment_delays', eta: soon() });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json().title).toBe('We are having payment delays');
    expect(response.json().body).toMatch(
      /^Since \d{2}:\d{2} UTC, some payouts are taking longer than usual to complete\. No funds have been lost: .* We will post an update by \d{2}:\d{2} UTC\.$/,
    );
  });

  it('previews with dryRun: the rendered message and its matches, nothing stored', async () => {
    const id = await incident();
    const before = await written(id);
    const response = await post(id, { kind: 'status_page', text: 'Write to jane@example.org', dryRun: true });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      publishable: false,
      message: { title: 'payouts slow', body: 'Write to jane@example.org' },
      pii: [{ field: 'body', kind: 'email', text: 'jane@example.org', offset: 9 }],
    });
    expect(await written(id)).toEqual(before);
  });

  it('refuses unknown placeholders, missing values, a template of another status and unknown components', async () => {
    const id = await incident();
    const before = await written(id);
    const cases: [Record<string, unknown>, number, string][] = [
      [{ kind: 'status_page', text: 'Next update by {when}' }, 422, 'incidents/unknown-placeholder'],
      [{ kind: 'status_page', template: 'status_update' }, 422, 'incidents/missing-field'],
      [{ kind: 'status_page', template: 'resolved' }, 422, 'incidents/template-not-applicable'],
      [
        { kind: 'status_page', template: 'status_update', eta: soon(), status: 'resolved' },
        422,
        'incidents/template-not-applicable',
      ],
      [
        {
          kind: 'status_page',
          text: 'slow',
          components: [{ component: 'horizon-1', status: 'major_outage' }],
        },
        422,
        'incidents/unknown-component',
      ],
      [{ kind: 'status_page', template: 'nope' }, 400, 'request/validation'],
      [{ kind: 'status_page' }, 400, 'request/validation'],
      [{ kind: 'status_page', text: 'slow', template: 'status_update' }, 400, 'request/validation'],
      [{ kind: 'status_page', text: 'slow', eta: '2020-01-01T00:00:00Z' }, 400, 'request/validation'],
      [{ kind: 'status_page', text: 'slow', eta: '2030-12-31T23:59:60Z' }, 400, 'request/validation'],
      [{ kind: 'status_page', text: 'line\nbreak' }, 400, 'request/validation'],
    ];
    for (const [body, status, type] of cases) {
      const response = await post(id, body);
      expect([response.statusCode, response.json().type], JSON.stringify(body)).toEqual([status, type]);
    }
    expect(await written(id)).toEqual(before);
    expect((await post(randomUUID(), { kind: 'status_page', text: 'slow' })).json().type).toBe(
      'incidents/not-found',
    );
  });

  it('lists an incident’s messages newest first, cursor-paged', async () => {
    const id = await incident();
    for (const text of ['first', 'second', 'third']) {
      expect((await post(id, { kind: 'customer', text })).statusCode).toBe(201);
    }
    const first = await get(`/internal/incidents/${id}/messages?limit=2`);
    expect(first.json().items.map((item: { body: string }) => item.body)).toEqual(['third', 'second']);
    const rest = await get(`/internal/incidents/${id}/messages?limit=2&cursor=${first.json().nextCursor}`);
    expect(rest.json()).toMatchObject({ items: [{ body: 'first' }], nextCursor: null });
    expect((await get(`/internal/incidents/${randomUUID()}/messages`)).statusCode).toBe(404);
  });
});

function soon(): string {
  return new Date(Date.now() + 45 * 60_000).toISOString();
}

describe('the public status page', () => {
  it('needs no token and shows only published status-page messages, with the worst component statuses', async () => {
    const sql = service.db.sql;
    const open = await incident('internal title: horizon-2 lost');
    const other = await incident();
    const closed = await incident();
    const published = await post(open, {
      kind: 'status_page',
      title: 'Payment delays',
      text: 'Payouts are slower than usual.',
      components: [
        { component: 'payouts', status: 'partial_outage' },
        { component: 'api', status: 'degraded_performance' },
      ],
    });
    expect(published.statusCode).toBe(201);
    await post(other, {
      kind: 'status_page',
      text: 'Deposits are slow.',
      components: [
        { component: 'payouts', status: 'degraded_performance' },
        { component: 'deposits', status: 'major_outage' },
      ],
    });
    await post(other, {
      kind: 'status_page',
      text: 'Deposits recovering.',
      components: [{ component: 'deposits', status: 'degraded_performance' }],
    });
    await post(closed, {
      kind: 'status_page',
      text: 'API errors.',
      components: [{ component: 'api', status: 'major_outage' }],
    });
    await changeStatus(sql, closed, 'resolved', undefined, alice);
    await post(open, { kind: 'customer', text: 'customer-only message' });
    await post(open, { kind: 'status_page', text: 'preview only', dryRun: true });
    await post(open, { kind: 'status_page', text: 'refused jane@example.org' });
    const quiet = await incident('never announced');

    const response = await get('/status', 'none');
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('public, max-age=15');
    const page = response.json();
    expect(page.components).toEqual([
      { name: 'api', status: 'degraded_performance' },
      { name: 'payouts', status: 'partial_outage' },
      { name: 'deposits', status: 'degraded_performance' },
    ]);
    expect(page.status).toBe('partial_outage');
    const shown = page.incidents.map((item: { id: string }) => item.id);
    expect(shown).toEqual(expect.arrayContaining([open, other, closed]));
    expect(shown).not.toContain(quiet);
    const bodies = page.incidents.flatMap((item: { updates: { body: string }[] }) =>
      item.updates.map((u) => u.body),
    );
    expect(bodies).toEqual(
      expect.arrayContaining([
        'Payouts are slower than usual.',
        'Deposits recovering.',
        'Deposits are slow.',
        'API errors.',
      ]),
    );
    for (const hidden of ['customer-only message', 'preview only', 'refused jane@example.org']) {
      expect(bodies).not.toContain(hidden);
    }
    expect(response.body).not.toContain('internal title');
    expect(page.incidents.find((item: { id: string }) => item.id === closed).resolvedAt).not.toBeNull();
    expect(page.incidents.find((item: { id: string }) => item.id === open).updates).toEqual([
      {
        status: 'investigating',
        title: 'Payment delays',
        body: 'Payouts are slower than usual.',
        components: [
          { name: 'api', status: 'degraded_performance' },
          { name: 'payouts', status: 'partial_outage' },
        ],
        publishedAt: published.json().publishedAt,
      },
    ]);
  });

  it('serves a minimal HTML page with every value escaped and no script', async () => {
    const id = await incident();
    await post(id, {
      kind: 'status_page',
      title: '<script>alert(1)</script>',
      text: 'a "quoted" & <b>bold</b> update',
    });
    const response = await get('/status.html', 'none');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['content-security-policy']).toContain("default-src 'none'");
    expect(response.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(response.body).toContain('a &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt; update');
    expect(response.body).not.toMatch(/<script/i);
  });
});

describe('roles on the message routes', () => {
  it('lets every staff role read the list and refuses anonymous and service callers', async () => {
    const id = await incident();
    const url = `/internal/incidents/${id}/messages`;
    for (const role of ['viewer', 'operator', 'admin'] as const)
      expect((await get(url, role)).statusCode).toBe(200);
    expect((await get(url, 'service')).statusCode).toBe(403);
    expect((await get(url, 'none')).statusCode).toBe(401);
  });

  it('lets operators and admins publish, and a viewer only while holding the communications role', async () => {
    const id = await incident();
    const body = { kind: 'customer', text: 'Payouts are slow.' };
    expect((await post(id, body, 'operator')).statusCode).toBe(201);
    expect((await post(id, body, 'admin')).statusCode).toBe(201);
    expect((await post(id, body, 'none')).statusCode).toBe(401);
    expect((await post(id, body, 'service')).statusCode).toBe(403);
    const refused = await post(id, body, 'viewer', 'carol');
    expect([refused.statusCode, refused.json().type]).toEqual([403, 'auth/forbidden']);
    expect((await post(id, { ...body, dryRun: true }, 'viewer', 'carol')).statusCode).toBe(403);
    await assignRole(service.db.sql, id, 'communications', 'carol', alice);
    const allowed = await post(id, body, 'viewer', 'carol');
    expect([allowed.statusCode, allowed.json().publishedBy]).toEqual([201, 'carol']);
    expect((await post(id, body, 'viewer', 'dave')).statusCode).toBe(403);
    const [count] = await service.db.sql<{ count: string }[]>`
      select count(*)::text as count from incident_messages where incident_id = ${id}::uuid`;
    expect(count?.count).toBe('3');
  });
});
