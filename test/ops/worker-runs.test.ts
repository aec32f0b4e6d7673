import { readFile } from 'node:fs/promises';
import { parseCrontab } from 'graphile-worker';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { domainCrontab } from '../../src/domains.ts';
import { freePort } from '../../src/platform/db/embedded.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { type Sample, scrapeSamples } from '../support/metrics.ts';
import { finished, spawnCli, waitFor } from '../support/process.ts';
import { alertTestsFile } from '../support/promtool.ts';
import { testEnv } from '../support/service.ts';

/**
 * The label values settledesk emits, read from a running `settledesk serve` (API, job worker,
 * settlement engine, deposit watcher, the sandbox network) by scraping /metrics, not from code:
 * the operators' alerts and our promtool tests must use exactly these.
 */

/** The names operators' alerts and our runbooks use for the loops; each must be scraped. */
const namedLoops = [
  'payout',
  'reconciliation',
  'deposit_watcher',
  'audit_seal',
  'audit_checkpoint',
  'approvals_expire',
  'merchant_webhooks_sweep',
  'streams_settle',
  'incident_escalate',
  'idempotency_purge',
  'platform_heartbeat',
  'status_probe',
  'access_reload',
  'loop_reporter',
];
const startMsMax = 90_000;
const loopsRunMsMax = 60_000;

let db: TestDatabase;
let serve: ReturnType<typeof spawnCli>;
let port = 0;

function scrape(): Promise<Sample[]> {
  return scrapeSamples(`http://127.0.0.1:${port}/metrics`);
}

function successes(samples: readonly Sample[], worker: string): number {
  return (
    samples.find(
      (sample) =>
        sample.name === 'worker_runs_total' &&
        sample.labels.worker === worker &&
        sample.labels.result === 'success',
    )?.value ?? 0
  );
}

function loopsOf(samples: readonly Sample[]): string[] {
  return samples
    .filter((sample) => sample.name === 'worker_interval_seconds')
    .map((sample) => sample.labels.worker ?? '')
    .sort();
}

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  const env = await testEnv(db, {
    PORT: String(port),
    PAYOUT_POLL_MS: '200',
    DEPOSIT_WATCHER_POLL_MS: '200',
    STATUS_PROBE_INTERVAL_MS: '500',
    WORKER_POLL_INTERVAL_MS: '100',
  });
  serve = spawnCli(['serve'], env);
  await waitFor(
    async () => ((await fetch(`http://127.0.0.1:${port}/health/live`)).ok ? true : undefined),
    startMsMax,
    'serve to answer',
  );
  // The scheduled tasks, once each now rather than at the next minute: the job each crontab line adds.
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    for (const { task } of parseCrontab(domainCrontab)) {
      await sql`select graphile_worker.add_job(${task}::text, '{}'::json, job_key => ${task}::text)`;
    }
  } finally {
    await sql.end();
  }
}, startMsMax);

afterAll(async () => {
  if (serve?.pid !== undefined && serve.exitCode === null) {
    serve.kill('SIGTERM');
    await finished(serve);
  }
  await db?.drop();
});

describe('worker_runs_total as scraped from a running settledesk serve', () => {
  it('counts a success of every loop the process runs, under the names operators use, with its last success and interval', async () => {
    const samples = await waitFor(
      async () => {
        const scraped = await scrape();
        const loops = loopsOf(scraped);
        const ran = loops.length > 0 && loops.every((worker) => successes(scraped, worker) > 0);
        return ran && namedLoops.every((worker) => loops.includes(worker)) ? scraped : undefined;
      },
      loopsRunMsMax,
      'every loop to succeed once',
    ).catch(async (error: unknown) => {
      const scraped = await scrape();
      const missing = loopsOf(scraped).filter((worker) => successes(scraped, worker) === 0);
      throw new Error(
        `${String(error)}; loops without a success: ${missing.join(', ')}; stderr: ${serve.output().stderr}`,
      );
    });
    for (const worker of loopsOf(samples)) {
      const named = (name: string, result?: string) =>
        samples.some(
          (sample) =>
            sample.name === name &&
            sample.labels.worker === worker &&
            (result === undefined || sample.labels.result === result),
        );
      expect(named('worker_runs_total', 'failed'), `${worker} failed`).toBe(true);
      expect(named('worker_last_success_timestamp_seconds'), `${worker} last success`).toBe(true);
    }
    const results = new Set(
      samples.filter((sample) => sample.name === 'worker_runs_total').map((sample) => sample.labels.result),
    );
    expect([...results].sort()).toEqual(['failed', 'success']);
    const detectors = samples.filter((sample) => sample.name === 'reconciliation_runs_total');
    expect(detectors.some((sample) => sample.labels.result === 'success' && sample.value > 0)).toBe(true);
    expect(samples.some((sample) => sample.labels.worker?.startsWith('reconcile_'))).toBe(false);
  });

  it("reports serve's own loops in readiness, not critical, and dependency_up 1 for them", async () => {
    const response = await fetch(`http://127.0.0.1:${port}/health/ready`);
    const body = (await response.json()) as { checks: Record<string, { critical: boolean; status: string }> };
    expect(body.checks.loops).toMatchObject({ critical: false, status: 'ok' });
    const gauge = (await scrape()).find(
      (sample) => sample.name === 'dependency_up' && sample.labels.dependency === 'loops',
    );
    expect(gauge?.value).toBe(1);
  });

  it('is what the promtool tests feed the alerts: every worker and result label there is one the service emits', async () => {
    const scraped = await scrape();
    const emitted = new Set(
      scraped.filter((sample) => sample.name.startsWith('worker_')).map((sample) => sample.labels.worker),
    );
    const tests = parse(await readFile(alertTestsFile, 'utf8')) as {
      tests: { input_series?: { series: string }[] }[];
    };
    const series = tests.tests
      .flatMap((group) => group.input_series ?? [])
      .map((input) => input.series)
      .filter((text) => text.startsWith('worker_'));
    expect(series.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const text of series) {
      const worker = /worker="([^"]*)"/.exec(text)?.[1];
      const result = /result="([^"]*)"/.exec(text)?.[1];
      if (worker === undefined || !emitted.has(worker)) problems.push(`${text}: worker not emitted`);
      if (result !== undefined && !['success', 'failed'].includes(result)) problems.push(`${text}: result`);
    }
    expect(problems).toEqual([]);
  });
});
