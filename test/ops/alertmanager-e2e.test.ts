import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { type Drill, type DrillContext, runDrill } from '../../src/drills/harness.ts';
import { bookWithoutCounterEntry } from '../../src/drills/ledger-imbalance.ts';
import {
  openFundedCustomers,
  runScheduledTask,
  type SandboxService,
  startSandboxService,
} from '../../src/drills/sandbox-service.ts';
import { metricValue, scrapeMetrics } from '../../src/drills/support.ts';
import type { IntakeOutcome } from '../../src/incidents/alertmanager.ts';
import { withTransaction } from '../../src/platform/db/transaction.ts';
import { stroopsPerUnit } from '../../src/stellar/units.ts';
import {
  compressExpression,
  compressRules,
  type PrometheusStack,
  ruleTimeFactor,
  startPrometheusStack,
  testTimers,
} from '../support/prometheus-stack.ts';
import { alertsFile } from '../support/promtool.ts';

/**
 * Acceptance 1 of issue 17 with the real tools: Debian's Prometheus scrapes a running settledesk
 * with the shipped alerts.yml, Debian's Alertmanager routes with the shipped alertmanager.yml to
 * settledesk. A ledger imbalance planted as the ledger-imbalance drill plants it opens one
 * incident whose timeline shows LedgerImbalance firing; the drill's repair adds alert_resolved and
 * the incident stays open; the notifications Alertmanager sent, replayed twice and in reverse
 * order, change nothing.
 *
 * Prometheus runs the shipped rules on a compressed clock (every duration divided by
 * `ruleTimeFactor`, test/support/prometheus-stack.ts): LedgerImbalance holds while
 * `ledger_imbalance_total` rose within its 5-minute windows, which would keep the incident's
 * resolved event 5 minutes away; compressed, it comes about 15 s after the count.
 */

const fundingMinor = 100n * stroopsPerUnit;
const movedMinor = 30n * stroopsPerUnit;
const firingMsMax = 60_000;
/** The alert's 5-minute windows compressed to 15 s, then a scrape, an evaluation and a notification. */
const resolvedMsMax = 90_000;
const drillMsMax = 4 * 60_000;
const cleanupMs = 30_000;

type Counts = Record<'incidents' | 'timeline' | 'audit' | 'alerts' | 'groups', number>;

async function counts(drill: SandboxService): Promise<Counts> {
  const [row] = await drill.sql<Counts[]>`
    select (select count(*)::int from incidents) as incidents,
           (select count(*)::int from incident_timeline) as timeline,
           (select count(*)::int from audit_log) as audit,
           (select count(*)::int from alertmanager_alerts) as alerts,
           (select count(*)::int from alertmanager_groups) as groups`;
  if (!row) throw new Error('no counts');
  return row;
}

type AlertIncident = { id: string; status: string; kinds: string[] };

/** Incidents opened by Alertmanager with an alert_firing event of `alertname`, with their timelines. */
async function incidentsFiring(drill: SandboxService, alertname: string): Promise<AlertIncident[]> {
  return drill.sql<AlertIncident[]>`
    select i.id, i.status,
      (select array_agg(t.kind order by t.id) from incident_timeline t where t.incident_id = i.id) as kinds
    from incidents i
    where i.source = 'alertmanager' and exists (
      select 1 from incident_timeline t where t.incident_id = i.id and t.kind = 'alert_firing'
        and t.detail -> 'labels' ->> 'alertname' = ${alertname}::text)`;
}

async function runLedgerTasks(drill: SandboxService): Promise<void> {
  await runScheduledTask(drill, 'reconcile_ledger_balance');
  await runScheduledTask(drill, 'reconcile_account_balances');
}

/** The one incident of `alertname` once its timeline holds `kind`; more than one fails at once. */
async function waitForEvent(
  context: DrillContext,
  drill: SandboxService,
  alertname: string,
  kind: string,
  timeoutMs: number,
): Promise<AlertIncident> {
  return context.waitFor(
    `one incident opened by Alertmanager with ${alertname} ${kind}`,
    async () => {
      const found = await incidentsFiring(drill, alertname);
      if (found.length > 1) throw context.fail(`${found.length} incidents for ${alertname}`);
      return found[0]?.kinds.includes(kind) ? found[0] : undefined;
    },
    timeoutMs,
  );
}

function checkRewrite(context: DrillContext, stack: PrometheusStack): void {
  const { shipped, rewritten } = stack;
  const expectedRoute = {
    ...shipped.route,
    group_wait: testTimers.groupWait,
    group_interval: testTimers.groupInterval,
    repeat_interval: testTimers.repeatInterval,
  };
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(rewritten.route, expectedRoute) || !same(rewritten.inhibit_rules, shipped.inhibit_rules))
    throw context.fail('the test changed the routing tree beyond its timers');
  if (
    !same(
      rewritten.receivers.map((receiver) => receiver.name),
      shipped.receivers.map((receiver) => receiver.name),
    )
  )
    throw context.fail('the test changed the receivers');
  const webhook = shipped.receivers.flatMap((receiver) => receiver.webhook_configs ?? [])[0];
  if (webhook?.send_resolved !== true)
    throw context.fail('the shipped webhook does not send resolved alerts');
}

/** Posts one captured body to settledesk as Alertmanager did, with the shared secret. */
async function replay(drill: SandboxService, body: string, secret: string): Promise<IntakeOutcome> {
  const response = await fetch(`${drill.service.url}/internal/alertmanager`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`replay answered ${response.status}: ${text}`);
  return JSON.parse(text) as IntakeOutcome;
}

const alertmanagerEndToEnd: Drill = {
  name: 'alertmanager-e2e',
  runbook: 'ledger-imbalance.md',
  description: 'a planted ledger imbalance opens one incident through Prometheus and Alertmanager',
  run: async (context) => {
    const secret = randomBytes(32).toString('base64url');
    const drill = await startSandboxService(context, { ALERTMANAGER_WEBHOOK_TOKEN: secret });
    const [payer, payee] = await context.step('open and fund two customer accounts', () =>
      openFundedCustomers(context, drill, [fundingMinor, fundingMinor]),
    );
    if (payer === undefined || payee === undefined) throw context.fail('no customer accounts');
    await context.step('the ledger detectors run clean before the fault', () => runLedgerTasks(drill));

    const stack = await context.step(
      'start Alertmanager with the shipped routing and Prometheus with the shipped alerts',
      () => startPrometheusStack(context, drill.service, secret),
    );
    checkRewrite(context, stack);

    const journalId = await context.step(
      'fault: a transfer booked by hand with the triggers off, its counter-entry missing (as the ledger-imbalance drill)',
      async () => {
        const id = await bookWithoutCounterEntry(drill.sql, payer, payee, movedMinor);
        await runLedgerTasks(drill);
        return id;
      },
    );
    const faultAt = performance.now();

    const opened = await context.step(
      'detection: Alertmanager opens one incident with LedgerImbalance firing',
      () => waitForEvent(context, drill, 'LedgerImbalance', 'alert_firing', firingMsMax),
    );
    context.figure(
      'firingMs',
      Math.round(performance.now() - faultAt),
      `incident ${opened.id}: ${opened.kinds.join(', ')}`,
    );

    await context.step(
      'resolution: the runbook completes the journal in one transaction, the detectors agree',
      async () => {
        await withTransaction(drill.sql, async (tx) => {
          await tx`select set_config('application_name', 'settledesk-repair', true)`;
          await tx`insert into entries (journal_id, account_id, asset, amount_minor)
                 values (${journalId}::uuid, ${payee}::uuid, 'XLM', ${movedMinor}::int8)`;
        });
        await runLedgerTasks(drill);
        const text = await scrapeMetrics(drill.service);
        for (const kind of ['ledger_imbalance', 'account_balance_mismatch'])
          if (metricValue(text, 'reconciliation_findings_open', { kind }) !== 0)
            throw context.fail(`reconciliation_findings_open{kind="${kind}"} is not 0 after the repair`);
      },
    );
    const repairedAt = performance.now();

    const resolved = await context.step(
      'recovery: alert_resolved is added and the incident stays open',
      async () => {
        const incident = await waitForEvent(
          context,
          drill,
          'LedgerImbalance',
          'alert_resolved',
          resolvedMsMax,
        );
        if (incident.id !== opened.id) throw context.fail('the resolution went to another incident');
        if (incident.status === 'resolved') throw context.fail('the alert resolved the incident');
        const kinds = incident.kinds.filter((kind) => kind.startsWith('alert_'));
        if (kinds.join(',') !== 'alert_firing,alert_resolved')
          throw context.fail(`LedgerImbalance's alert events: ${kinds.join(', ')}`);
        return incident;
      },
    );
    context.figure(
      'resolvedMs',
      Math.round(performance.now() - repairedAt),
      `incident ${resolved.id} is ${resolved.status}`,
    );

    await context.step(
      "the drill's fault also pages AccountBalanceMismatch: a group, and an incident, of its own",
      async () => {
        const [mismatch, ...more] = await incidentsFiring(drill, 'AccountBalanceMismatch');
        if (!mismatch || more.length > 0 || mismatch.id === opened.id)
          throw context.fail('AccountBalanceMismatch is not in one incident of its own');
        if (
          mismatch.status === 'resolved' ||
          mismatch.kinds.join(',') !== 'declared,alert_firing,alert_resolved'
        )
          throw context.fail(
            `AccountBalanceMismatch's incident is ${mismatch.status}: ${mismatch.kinds.join(', ')}`,
          );
      },
    );

    await context.step(
      'replay: every notification Alertmanager sent, twice and in reverse order, changes nothing',
      async () => {
        await stack.stop();
        const bodies = stack.captured.map((entry) => entry.body);
        const sent = bodies.map(
          (body) => JSON.parse(body) as { status: string; groupLabels: Record<string, string> },
        );
        for (const status of ['firing', 'resolved'])
          if (
            !sent.some((body) => body.status === status && body.groupLabels.alertname === 'LedgerImbalance')
          )
            throw context.fail(`Alertmanager sent no ${status} LedgerImbalance notification`);
        const before = await counts(drill);
        const outcomes: IntakeOutcome[] = [];
        for (const body of [...bodies, ...bodies, ...[...bodies].reverse()])
          outcomes.push(await replay(drill, body, secret));
        const changed = outcomes.filter(
          (outcome) =>
            outcome.incidentOpened ||
            outcome.firingAdded + outcome.resolvedAdded + outcome.resolvedUnknown > 0,
        );
        if (changed.length > 0)
          throw context.fail(`${changed.length} replays changed something: ${JSON.stringify(changed[0])}`);
        const after = await counts(drill);
        if (JSON.stringify(after) !== JSON.stringify(before))
          throw context.fail(`before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
        const [still] = await incidentsFiring(drill, 'LedgerImbalance');
        if (still?.status !== 'investigating') throw context.fail(`the incident is ${still?.status}`);
        context.figure(
          'replayed',
          outcomes.length,
          `${bodies.length} notifications replayed 3 times: ${JSON.stringify(after)}`,
        );
      },
    );
  },
};

describe('Alertmanager intake end to end (Debian prometheus and prometheus-alertmanager)', () => {
  it('runs the shipped rules with only their durations divided by the compression factor', async () => {
    const shipped = parse(await readFile(alertsFile, 'utf8')) as Parameters<typeof compressRules>[0];
    const compressed = compressRules(shipped);
    const masked = (file: typeof shipped) =>
      JSON.stringify(file).replace(/\b\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*\b/g, 'D');
    expect(masked(compressed)).toBe(masked(shipped));
    const ledger = compressed.groups
      .flatMap((group) => group.rules)
      .find((rule) => rule.alert === 'LedgerImbalance');
    expect(ruleTimeFactor).toBe(20);
    expect(String(ledger?.expr)).toContain('increase(ledger_imbalance_total[15000ms])');
    expect(String(ledger?.expr)).toContain('offset 15000ms');
    expect(compressExpression('max_over_time(x[1h:1m] offset 1d)')).toBe(
      'max_over_time(x[180000ms:3000ms] offset 4320000ms)',
    );
  });

  it(
    'a planted ledger imbalance opens one incident with LedgerImbalance firing, the repair adds alert_resolved, the incident stays open, and replays change nothing',
    async () => {
      process.env.DATABASE_URL ||= inject('databaseAdminUrl');
      const report = await runDrill(alertmanagerEndToEnd, {
        timeoutMs: drillMsMax,
        print: (line) => process.stdout.write(`${line}\n`),
      });
      expect(report.steps.every((step) => step.ok)).toBe(true);
      expect(report.figures.firingMs).toBeLessThan(firingMsMax);
      expect(report.figures.resolvedMs).toBeLessThan(resolvedMsMax);
      expect(report.figures.replayed).toBeGreaterThan(0);
    },
    drillMsMax + cleanupMs,
  );
});
