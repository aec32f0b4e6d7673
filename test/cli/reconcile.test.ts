import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNetwork, type TestNetwork } from '../../src/sandbox/test-support.ts';
import { runCli } from '../support/process.ts';
import { startTestService, type TestService, testEnv } from '../support/service.ts';

let service: TestService;
let network: TestNetwork;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTestService();
  network = await startTestNetwork({ ledgerCloseMs: 100 });
  env = await testEnv(service.db);
});

afterAll(async () => {
  await service.close();
  await network.stop();
});

type Line = { detector: string; outcome: string; scanned?: number; reason?: string };

describe('settledesk reconcile', () => {
  it('runs the database detectors without Stellar and says which ones it skipped', async () => {
    const run = await runCli(['--json', 'reconcile', 'run'], env);
    expect(run.code).toBe(1);
    const lines = JSON.parse(run.stdout) as Line[];
    const outcomes = Object.fromEntries(lines.map((line) => [line.detector, line.outcome]));
    expect(outcomes).toEqual({
      ledger_balance: 'completed',
      account_balances: 'completed',
      stuck_settlements: 'completed',
      outgoing_payments: 'skipped',
      chain_balance: 'skipped',
      escrow: 'completed',
      deposits: 'skipped',
      payout_volume: 'completed',
    });
    expect(lines.find((line) => line.detector === 'deposits')?.reason).toContain('needs Stellar');

    const human = await runCli(['reconcile', 'run', '--detector', 'escrow'], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^detector\s+outcome\s+scanned/);
    expect(human.stdout).toMatch(/escrow\s+completed/);
  });

  it('runs every detector against Stellar when it can reach it', async () => {
    const withStellar = { ...env, STELLAR_HORIZON_URLS: network.sandbox.horizonUrls.join(',') };
    const run = await runCli(['--json', 'reconcile', 'run'], withStellar);
    expect(run.code, run.stderr).toBe(0);
    const lines = JSON.parse(run.stdout) as Line[];
    expect(lines.map((line) => line.outcome)).toEqual(Array(8).fill('completed'));
  });

  it('rebuilds a detector with --full and lists what it found, open or all', async () => {
    const [fees] = await service.db.sql<
      { id: string }[]
    >`select id from accounts where type = 'fees' and asset = 'XLM'`;
    await service.db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      const journalId = randomUUID();
      await tx`insert into journal_transactions (id, kind) values (${journalId}::uuid, 'test_corruption')`;
      await tx`insert into entries (journal_id, account_id, asset, amount_minor)
               values (${journalId}::uuid, ${fees?.id ?? ''}::uuid, 'XLM', 42)`;
    });
    const full = await runCli(['--json', 'reconcile', 'run', '--detector', 'ledger_balance', '--full'], env);
    expect(full.code, full.stderr).toBe(0);
    expect(JSON.parse(full.stdout)).toMatchObject([
      { detector: 'ledger_balance', outcome: 'completed', scanned: 1 },
    ]);

    const open = await runCli(
      ['--json', 'reconcile', 'findings', '--open', '--kind', 'ledger_imbalance'],
      env,
    );
    expect(open.code, open.stderr).toBe(0);
    expect(JSON.parse(open.stdout)).toMatchObject([
      { kind: 'ledger_imbalance', subject: 'XLM', evidence: { sum: '0.0000042' }, resolvedAt: null },
    ]);
    const human = await runCli(['reconcile', 'findings'], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/ledger_imbalance\s+XLM\s+\S+\s+\S+\s+open\s+1\s+\{.*"sum":"0.0000042".*\}/);

    const bad = await runCli(['reconcile', 'run', '--detector', 'everything'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--detector must be one of ledger_balance');
    const badKind = await runCli(['reconcile', 'findings', '--kind', 'typo'], env);
    expect(badKind.code).toBe(1);
    expect(badKind.stderr).toContain('--kind must be one of');
  });

  it('closes an open finding by hand with a reason, audited, and refuses to close it twice', async () => {
    const [finding] = await service.db.sql<{ id: string }[]>`
      insert into reconciliation_findings (kind, subject, evidence)
      values ('unknown_outgoing_payment', 'token-123', '{"amount": "5"}') returning id`;
    const id = finding?.id ?? '';
    const closed = await runCli(
      ['--json', 'reconcile', 'close', id, '--reason', 'key rotated, funds recovered', '--as', 'sec-lead'],
      env,
    );
    expect(closed.code, closed.stderr).toBe(0);
    expect(JSON.parse(closed.stdout)).toMatchObject({
      id,
      evidence: { amount: '5', closedBy: 'sec-lead', closeReason: 'key rotated, funds recovered' },
    });
    const [row] = await service.db.sql<{ open: boolean }[]>`
      select resolved_at is null as open from reconciliation_findings where id = ${id}::uuid`;
    expect(row?.open).toBe(false);
    const [audit] = await service.db.sql<{ actor: string }[]>`
      select actor from audit_log where action = 'reconciliation.finding_closed' and subject_id = ${id}`;
    expect(audit?.actor).toBe('sec-lead');

    const again = await runCli(['reconcile', 'close', id, '--reason', 'again'], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('reconciliation/finding-not-open');
    const noReason = await runCli(['reconcile', 'close', randomUUID()], env);
    expect(noReason.code).toBe(1);
    expect(noReason.stderr).toContain('--reason');
  });
});
