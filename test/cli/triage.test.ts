import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNetwork } from '../../src/sandbox/test-support.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { runCli } from '../support/process.ts';
import { testEnv } from '../support/service.ts';

/** `settledesk triage` with no API running: it reads the database directly. */

let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  env = await testEnv(db);
});

afterAll(async () => {
  await db.drop();
});

/** A loop as a process reports it, last succeeded `ageSeconds` ago (stale after 180 s). */
async function loopRow(processId: string, worker: string, ageSeconds: number): Promise<void> {
  await db.sql`
    insert into worker_loops (process_id, worker, interval_seconds, stale_after_seconds, last_success_at,
                              report_interval_seconds, reported_at)
    values (${processId}::text, ${worker}::text, 1, 180, now() - make_interval(secs => ${ageSeconds}::float8), 10, now())
    on conflict (process_id, worker) do update set last_success_at = excluded.last_success_at, reported_at = now()`;
}

describe('settledesk triage with the API stopped', () => {
  it('is not OK with nothing running: no worker heartbeat is workers down, no Stellar status is unknown', async () => {
    await db.sql`delete from worker_heartbeats`;
    const json = await runCli(['--json', 'triage', 'summary'], env);
    expect(json.code, json.stderr).toBe(0);
    const summary = JSON.parse(json.stdout);
    expect(summary).toMatchObject({ status: 'down', stellar: null });
    expect(summary.parts.workers.status).toBe('down');
    expect(summary.parts.stellar.status).toBe('unknown');
    expect(summary.dependencies.checks.postgresql.status).toBe('ok');

    const human = await runCli(['triage', 'summary'], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain('status: DOWN');
    expect(human.stdout).toMatch(/^workers: DOWN/m);
    expect(human.stdout).not.toContain('status: OK');
    const check = await runCli(['triage', 'summary', '--check'], env);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain('workers: down');
  });

  it('--check exits 1 naming what needs attention, and 0 once it is clear', async () => {
    const network = await startTestNetwork({ ledgerCloseMs: 100 });
    try {
      const withStellar = {
        ...env,
        STELLAR_HORIZON_URLS: network.sandbox.horizonUrls.join(','),
        STELLAR_RPC_URL: network.sandbox.rpcUrl,
      };
      await db.sql`insert into worker_heartbeats (worker_id, seen_at) values ('worker-1', now())
        on conflict (worker_id) do update set seen_at = now()`;
      await loopRow('worker-1', 'payout', 1);
      await runCli(['mode', 'freeze', '--reason', 'drill', '--as', 'olga'], withStellar);
      const frozen = await runCli(['triage', 'summary', '--check'], withStellar);
      expect(frozen.code).toBe(1);
      expect(frozen.stderr).toContain('payouts are frozen');
      await db.sql`update payment_controls set payouts_frozen = false`;
      const clear = await runCli(['triage', 'summary', '--check'], withStellar);
      expect(clear.code, clear.stderr).toBe(0);
      expect(clear.stdout).toContain('status: OK');
    } finally {
      await network.stop();
    }
  });

  it('triage loops lists every loop with its processes, and --check exits 1 naming the stale ones', async () => {
    await db.sql`delete from worker_loops`;
    await loopRow('worker-1', 'payout', 400);
    await loopRow('worker-1', 'deposit_watcher', 2);
    const json = await runCli(['--json', 'triage', 'loops'], env);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as { loops: { worker: string; stale: boolean }[] };
    expect(report.loops.map((loop) => [loop.worker, loop.stale])).toEqual([
      ['deposit_watcher', false],
      ['payout', true],
    ]);
    const human = await runCli(['triage', 'loops'], env);
    expect(human.stdout).toMatch(/payout\s+YES\s+4\d\d\s+1\s+180\s+1: worker-1/);
    const check = await runCli(['triage', 'loops', '--check'], env);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain('stale loops: payout');
    const summary = await runCli(['triage', 'summary'], env);
    expect(summary.stdout).toMatch(
      /^loops: STALE \(payout last succeeded 4\d\d s ago \(interval 1 s, stale after 180 s\)\)$/m,
    );
    await loopRow('worker-1', 'payout', 1);
    expect((await runCli(['triage', 'loops', '--check'], env)).code).toBe(0);
  });

  it('refuses a malformed --older-than and an unknown payout with exit status 1', async () => {
    const bad = await runCli(['triage', 'stuck', '--older-than', 'soon'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--older-than');
    const unknown = await runCli(['triage', 'payout', '00000000-0000-4000-8000-000000000000'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('payouts/not-found');
  });

  it('stores a snapshot attached to the incident', async () => {
    const result = await runCli(
      ['--json', 'triage', 'snapshot', '--incident', 'INC-9', '--as', 'oncall-ana'],
      env,
    );
    expect(result.code, result.stderr).toBe(0);
    const { id } = JSON.parse(result.stdout) as { id: string };
    const [row] = await db.sql<{ incidentRef: string; takenBy: string }[]>`
      select incident_ref as "incidentRef", taken_by as "takenBy" from incident_snapshots where id = ${id}::uuid`;
    expect(row).toEqual({ incidentRef: 'INC-9', takenBy: 'oncall-ana' });
  });
});
