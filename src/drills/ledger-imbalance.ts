import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { stellarDecimals, stroopsPerUnit } from '../stellar/units.ts';
import { type Drill, type DrillContext, DrillFailure, runProcess } from './harness.ts';
import {
  controlModes,
  expectModes,
  expectSnapshotWithFindings,
  type Finding,
  openFundedCustomers,
  runScheduledTask,
  type SandboxService,
  startSandboxService,
} from './sandbox-service.ts';
import {
  alertExpression,
  api,
  checkLedgerBalanced,
  expectReadOnlyRefusal,
  idempotencyKey,
  metricValue,
  scrapeMetrics,
} from './support.ts';

const fundingMinor = 100n * stroopsPerUnit;
/** What the hand-made transfer moved from the payer to the payee. */
const movedMinor = 30n * stroopsPerUnit;
const detectionMsMax = 20_000;
const repairTimeoutMs = 30_000;
const secondAdmin = 'admin-bob';

type LedgerReport = { balanced: boolean; findings: Finding[] };
type Proposal = { id: string; action: string; payloadHash: string; state: string };

/**
 * docs/runbooks/ledger-imbalance.md against `settledesk serve`: someone with a superuser session
 * turns the ledger's triggers off (`session_replication_role = replica`) and books a transfer by
 * hand, writing the payer's entry but not the payee's, and both balances. The ledger then sums to
 * minus the amount and the payee's balance differs from its entries. The service's scheduled
 * ledger_balance and account_balances tasks must raise `ledger_imbalance_total{currency}` and the
 * open findings on /metrics, and triage must report it. The runbook's cells confirm it, hold
 * money movement and find the rows; the repair the runbook prescribes for rows written around the
 * triggers completes the journal in one transaction with the triggers in force; the detectors then
 * resolve both findings. The transfer nobody asked for is reversed by a manual adjustment under
 * the two-person rule, the kill switches are left with a second admin, and every account holds
 * what it held before.
 */
export const ledgerImbalanceDrill: Drill = {
  name: 'ledger-imbalance',
  runbook: 'ledger-imbalance.md',
  description:
    'a transfer booked by hand with the triggers off and its counter-entry missing; detection pages, ' +
    'the runbook holds money movement, the journal is repaired, a two-person adjustment reverses it',
  run: async (context) => {
    const drill = await startSandboxService(context);
    const [payer, payee] = await context.step('open and fund two customer accounts', () =>
      openFundedCustomers(context, drill, [fundingMinor, fundingMinor]),
    );
    if (payer === undefined || payee === undefined) throw context.fail('no customer accounts');

    await context.step('the ledger detectors run clean before the fault', async () => {
      await runLedgerTasks(drill);
      const text = await scrapeMetrics(drill.service);
      const before = {
        imbalances: metricValue(text, 'ledger_imbalance_total', { currency: 'XLM' }),
        imbalanceOpen: metricValue(text, 'reconciliation_findings_open', { kind: 'ledger_imbalance' }),
        mismatchOpen: metricValue(text, 'reconciliation_findings_open', { kind: 'account_balance_mismatch' }),
      };
      if (Object.values(before).some((value) => value !== 0))
        throw context.fail(`before the fault: ${JSON.stringify(before)} on /metrics`);
    });

    const journalId = await context.step(
      'fault: a superuser books a transfer with the triggers off, without its counter-entry',
      async () => {
        const id = await bookWithoutCounterEntry(drill.sql, payer, payee, movedMinor);
        context.note(
          `journal ${id}: ${formatAmount(-movedMinor, stellarDecimals)} XLM on the payer, nothing on the payee`,
        );
        return id;
      },
    );
    const faultStarted = performance.now();

    await context.step('detection: the scheduled ledger tasks page on /metrics', async () => {
      if (!alertExpression('LedgerImbalance').includes('increase(ledger_imbalance_total[5m])) > 0'))
        throw context.fail(
          'the LedgerImbalance alert is no longer built on increase(ledger_imbalance_total)',
        );
      if (
        !alertExpression('AccountBalanceMismatch').includes(
          'reconciliation_findings_open{kind="account_balance_mismatch"}',
        )
      )
        throw context.fail(
          'the AccountBalanceMismatch alert is no longer built on reconciliation_findings_open',
        );
      await context.waitFor(
        'ledger_imbalance_total{currency="XLM"} to increase and both findings to be open on /metrics',
        async () => {
          await runLedgerTasks(drill);
          const text = await scrapeMetrics(drill.service);
          const paged =
            metricValue(text, 'ledger_imbalance_total', { currency: 'XLM' }) >= 1 &&
            metricValue(text, 'reconciliation_findings_open', { kind: 'ledger_imbalance' }) === 1 &&
            metricValue(text, 'reconciliation_findings_open', { kind: 'account_balance_mismatch' }) === 1;
          return paged ? true : undefined;
        },
        detectionMsMax,
      );
      context.figure(
        'detectionMs',
        Math.round(performance.now() - faultStarted),
        `the unbalanced journal to both findings on the service's /metrics: ${Math.round(performance.now() - faultStarted)} ms`,
      );
    });

    const findings = await context.step('triage: the ledger report and `triage ledger --check`', async () => {
      const report = await api<LedgerReport>(
        drill.service,
        drill.tokens.operator,
        'GET',
        '/internal/incident/ledger-imbalance',
      );
      if (report.status !== 200)
        throw context.fail(`GET /internal/incident/ledger-imbalance answered ${report.status}`);
      const found = checkLedgerFindings(context, report.body, payee);
      const check = await context.cli(['triage', 'ledger', '--check'], context.env);
      if (check.code !== 1)
        throw context.fail(`settledesk triage ledger --check exited ${check.code}, not 1`);
      return found;
    });

    Object.assign(context.env, { ACCOUNT_ID: payee, INCIDENT_REF: 'DRILL-ledger-imbalance' });
    await context.step('runbook: recount, and see the ledger as triage does', async () => {
      const recount = await context.cellReports('check-ledger', 'XLM does not sum to zero');
      await context.expectAfter('check-ledger', 'it does not name the imbalanced asset', async () => {
        if (!recount.stderr.includes('XLM sums to')) throw new Error(recount.stderr);
      });
      const [triage] = await context.cells(['triage-ledger']);
      await context.expectAfter('triage-ledger', 'it does not report the imbalance', async () => {
        for (const expected of ['IMBALANCED', 'ledger_imbalance', 'account_balance_mismatch', payee])
          if (!triage?.stdout.includes(expected)) throw new Error(`its output does not name ${expected}`);
      });
    });
    await context.step('runbook: hold every money movement and payouts, capture the evidence', async () => {
      await context.cells(['enter-read-only', 'freeze-payouts', 'take-snapshot'], { yes: true });
      await context.expectAfter('enter-read-only', 'a transfer is still accepted', async () => {
        const refused = await api<{ type?: string }>(
          drill.service,
          drill.tokens.service,
          'POST',
          '/v1/transfers',
          { sourceAccountId: payee, destinationAccountId: payer, amount: '1' },
          { 'idempotency-key': idempotencyKey(context) },
        );
        expectReadOnlyRefusal('POST /v1/transfers', refused);
      });
      await context.expectAfter('freeze-payouts', 'payouts are not frozen', async () => {
        await expectModes(drill, { payoutsFrozen: true });
      });
      await context.expectAfter('take-snapshot', 'no snapshot holds the ledger findings', async () => {
        await expectSnapshotWithFindings(drill, 'DRILL-ledger-imbalance', 'ledger', 2);
      });
    });
    await context.step('runbook: find the journal, the triggers, the account and who did it', async () => {
      const [journals, triggers, mismatches] = await context.cells([
        'find-unbalanced-journals',
        'check-ledger-triggers',
        'find-balance-mismatches',
        'show-account',
        'search-logs-detectors',
      ]);
      await context.expectAfter('find-unbalanced-journals', 'it does not find the journal', async () => {
        if (!journals?.stdout.includes(journalId)) throw new Error(journals?.stdout ?? '');
      });
      await context.expectAfter(
        'check-ledger-triggers',
        'it does not show the triggers enabled',
        async () => {
          if (!/entries_balanced\s*\|\s*O/.test(triggers?.stdout ?? ''))
            throw new Error(triggers?.stdout ?? '');
        },
      );
      await context.expectAfter('find-balance-mismatches', 'it does not find the payee', async () => {
        if (!mismatches?.stdout.includes(payee) || mismatches.stdout.includes(payer))
          throw new Error(mismatches?.stdout ?? '');
      });
      await context.cells(['verify-audit-log'], { yes: true });
    });

    await context.step('resolution: the database owner completes the journal, in one transaction', () =>
      repairJournal(context, drill, journalId, payee),
    );
    await context.step('runbook: re-run the detectors; the books balance again', async () => {
      await context.cells(['rerun-ledger-detectors'], { yes: true });
      await context.expectAfter('rerun-ledger-detectors', 'the ledger findings are still open', async () => {
        const report = await api<LedgerReport>(
          drill.service,
          drill.tokens.operator,
          'GET',
          '/internal/incident/ledger-imbalance',
        );
        if (!report.body.balanced || report.body.findings.length > 0)
          throw new Error(JSON.stringify(report.body));
      });
      const [, mismatches] = await context.cells(['check-ledger', 'find-balance-mismatches']);
      await context.expectAfter('find-balance-mismatches', 'an account still disagrees', async () => {
        if (!/\(0 rows\)/.test(mismatches?.stdout ?? '')) throw new Error(mismatches?.stdout ?? '');
      });
    });

    await context.step(
      'runbook: an adjustment waits for read_only to be left, with a second admin',
      async () => {
        const refused = await proposeReversal(context, drill, {
          payer,
          payee,
          journalId,
          finding: findings.imbalance,
        });
        expectReadOnlyRefusal('in read_only, POST /v1/adjustments', refused);
        await context.cells(['propose-leave-kill-switches'], { yes: true });
        await context.expectAfter(
          'propose-leave-kill-switches',
          'one person released a kill switch',
          async () => {
            await expectModes(drill, { paymentsMode: 'read_only', payoutsFrozen: true });
          },
        );
        const [listed] = await context.cells(['list-pending-proposals']);
        const proposals = await pendingProposals(context);
        const standard = proposals.find((proposal) => proposal.action === 'controls.restore_standard');
        if (!standard || !listed?.stdout.includes(standard.id))
          throw new DrillFailure(
            context.runbookPath,
            'propose-leave-kill-switches',
            'no pending proposal to return to standard',
          );
        await approve(context, standard, secondAdmin);
      },
    );

    await context.step('resolution: a two-person adjustment reverses the transfer nobody asked for', () =>
      reverseByAdjustment(context, drill, { payer, payee, journalId, finding: findings.imbalance }),
    );

    await context.step('runbook: unfreezing payouts takes a second admin', async () => {
      const unfreeze = (await pendingProposals(context)).find(
        (proposal) => proposal.action === 'controls.unfreeze_payouts',
      );
      if (!unfreeze)
        throw new DrillFailure(
          context.runbookPath,
          'propose-leave-kill-switches',
          'no pending unfreeze proposal',
        );
      await approve(context, unfreeze, secondAdmin);
      const modes = await controlModes(drill);
      if (modes.paymentsMode !== 'standard' || modes.payoutsFrozen)
        throw context.fail(`after both approvals: ${JSON.stringify(modes)}`);
    });

    await context.step('recovery: the scheduled tasks report the ledger balanced on /metrics', async () => {
      await runLedgerTasks(drill);
      const text = await scrapeMetrics(drill.service);
      for (const kind of ['ledger_imbalance', 'account_balance_mismatch']) {
        const open = metricValue(text, 'reconciliation_findings_open', { kind });
        if (open !== 0)
          throw context.fail(`reconciliation_findings_open{kind="${kind}"} is ${open} after the repair`);
      }
      const check = await context.cli(['triage', 'ledger', '--check'], context.env);
      if (check.code !== 0)
        throw context.fail(`settledesk triage ledger --check exited ${check.code}: ${check.stderr}`);
      await context.cells(['check-ledger']);
    });
    await context.step('money: every account holds what it held before the fault', () =>
      moneyIntact(context, drill, [payer, payee]),
    );
  },
};

/**
 * The fault: a superuser turns the ledger's triggers off and books a transfer of `movedMinor` XLM
 * by hand, the payer's entry without the payee's, and both balances. Returns the journal's id.
 * The Alertmanager end-to-end test plants the same fault.
 */
export async function bookWithoutCounterEntry(
  sql: Sql,
  payer: string,
  payee: string,
  movedMinor: bigint,
): Promise<string> {
  const id = randomUUID();
  await withTransaction(sql, async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`insert into journal_transactions (id, kind, reference)
             values (${id}::uuid, 'manual_transfer', 'ops-ticket-4711')`;
    await tx`insert into entries (journal_id, account_id, asset, amount_minor)
             values (${id}::uuid, ${payer}::uuid, 'XLM', ${-movedMinor}::int8)`;
    await tx`update accounts set balance_minor = balance_minor - ${movedMinor}::int8 where id = ${payer}::uuid`;
    await tx`update accounts set balance_minor = balance_minor + ${movedMinor}::int8 where id = ${payee}::uuid`;
  });
  return id;
}

/** The detectors, as their crontab lines would run them, in the service's worker. */
async function runLedgerTasks(drill: SandboxService): Promise<void> {
  await runScheduledTask(drill, 'reconcile_ledger_balance');
  await runScheduledTask(drill, 'reconcile_account_balances');
}

function checkLedgerFindings(
  context: DrillContext,
  report: LedgerReport,
  payee: string,
): { imbalance: Finding } {
  const imbalance = report.findings.find((finding) => finding.kind === 'ledger_imbalance');
  const mismatch = report.findings.find((finding) => finding.kind === 'account_balance_mismatch');
  if (report.balanced || report.findings.length !== 2 || !imbalance || !mismatch)
    throw context.fail(`the ledger report does not show the imbalance: ${JSON.stringify(report)}`);
  const moved = formatAmount(movedMinor, stellarDecimals);
  if (imbalance.subject !== 'XLM' || imbalance.evidence.sum !== formatAmount(-movedMinor, stellarDecimals))
    throw context.fail(
      `the ledger_imbalance finding does not show XLM short by ${moved}: ${JSON.stringify(imbalance)}`,
    );
  if (mismatch.subject !== payee || mismatch.evidence.difference !== moved)
    throw context.fail(
      `the account_balance_mismatch finding does not show the payee: ${JSON.stringify(mismatch)}`,
    );
  return { imbalance };
}

/**
 * The runbook's repair for rows written around the triggers: a script that completes exactly the
 * journal found by find-unbalanced-journals (the payee's missing entry; its balance already holds
 * it), run once with psql in one transaction with the triggers in force, so `entries_balanced`
 * checks the completed journal at commit. Its text and output stay in the drill folder.
 */
async function repairJournal(context: DrillContext, drill: SandboxService, journalId: string, payee: string) {
  const script = join(context.dir, 'repair-journal.sql');
  await writeFile(
    script,
    [
      `-- Completes journal ${journalId}: the payee's entry that the hand-made transfer left out.`,
      "select set_config('application_name', 'settledesk-repair', true);",
      `insert into entries (journal_id, account_id, asset, amount_minor)`,
      `values ('${journalId}', '${payee}', 'XLM', ${movedMinor});`,
      `select journal_id, sum(amount_minor) as sum_minor, count(*) as entries from entries`,
      `where journal_id = '${journalId}' group by journal_id;`,
      '',
    ].join('\n'),
  );
  const result = await runProcess(
    'psql',
    [drill.databaseUrl, '-X', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-f', script],
    {},
    repairTimeoutMs,
  );
  await writeFile(join(context.dir, 'repair-journal.out'), `${result.stdout}${result.stderr}`);
  if (result.code !== 0) throw context.fail(`the repair script exited ${result.code}: ${result.stderr}`);
  context.note(`repair script ran once: ${result.stdout.trim().split('\n').at(-2)?.trim() ?? ''}`);
}

async function pendingProposals(context: DrillContext): Promise<Proposal[]> {
  const result = await context.cli(['--json', 'approvals', 'list', '--state', 'pending'], context.env);
  if (result.code !== 0)
    throw context.fail(`settledesk approvals list exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as Proposal[];
}

async function approve(context: DrillContext, proposal: Proposal, reviewer: string): Promise<void> {
  const result = await context.cli(
    ['--json', 'approvals', 'approve', proposal.id, '--hash', proposal.payloadHash, '--as', reviewer],
    context.env,
  );
  if (result.code !== 0)
    throw context.fail(`approving ${proposal.action} as ${reviewer} exited ${result.code}: ${result.stderr}`);
}

type Reversal = { payer: string; payee: string; journalId: string; finding: Finding };

/** One admin (admin-alice) proposes the adjustment that moves the amount back, through the API. */
function proposeReversal(context: DrillContext, drill: SandboxService, facts: Reversal) {
  const moved = formatAmount(movedMinor, stellarDecimals);
  return api<Proposal & { type?: string }>(
    drill.service,
    drill.tokens.admin,
    'POST',
    '/v1/adjustments',
    {
      entries: [
        { accountId: facts.payee, amount: `-${moved}` },
        { accountId: facts.payer, amount: moved },
      ],
      reason: `reverses journal ${facts.journalId}, a transfer booked by hand with no request behind it`,
      evidenceRef: `finding ${facts.finding.id}; journal ${facts.journalId}`,
    },
    { 'idempotency-key': idempotencyKey(context) },
  );
}

/**
 * The repaired journal is balanced but moved money nobody asked for: the runbook's "money booked to
 * the wrong account" path. One admin proposes the reversing adjustment through the API; the
 * money does not move until a second admin approves it, and the proposer cannot approve it.
 */
async function reverseByAdjustment(
  context: DrillContext,
  drill: SandboxService,
  facts: Reversal,
): Promise<void> {
  const proposed = await proposeReversal(context, drill, facts);
  if (proposed.status !== 202)
    throw context.fail(`POST /v1/adjustments answered ${proposed.status}: ${JSON.stringify(proposed.body)}`);
  const [listed] = await context.cells(['list-pending-proposals']);
  if (!listed?.stdout.includes(proposed.body.id))
    throw context.fail(`list-pending-proposals does not list adjustment proposal ${proposed.body.id}`);
  const balances = async () => {
    const rows = await drill.sql<{ id: string; balanceMinor: bigint }[]>`
      select id, balance_minor as "balanceMinor" from accounts where id = any(${[facts.payer, facts.payee]}::uuid[])`;
    return new Map(rows.map((row) => [row.id, row.balanceMinor]));
  };
  const pending = await balances();
  if (pending.get(facts.payer) !== fundingMinor - movedMinor)
    throw context.fail('the adjustment moved money before a second admin approved it');
  const self = await context.cli(
    ['approvals', 'approve', proposed.body.id, '--hash', proposed.body.payloadHash, '--as', 'admin-alice'],
    context.env,
  );
  if (self.code === 0) throw context.fail('the proposer approved their own adjustment');
  await approve(context, proposed.body, secondAdmin);
  const [journal] = await drill.sql<{ count: number }[]>`
    select count(*)::int as count from journal_transactions
    where kind = 'adjustment' and reference = ${proposed.body.id}::text`;
  if (journal?.count !== 1)
    throw context.fail(`${journal?.count ?? 0} adjustment journals for proposal ${proposed.body.id}`);
  context.note(
    `adjustment ${proposed.body.id} proposed by admin-alice, approved by ${secondAdmin}, posted once`,
  );
}

/** Every account's balance equals its entries; the two customers hold their funding again. */
async function moneyIntact(context: DrillContext, drill: SandboxService, customers: readonly string[]) {
  await checkLedgerBalanced(context);
  const rows = await drill.sql<{ id: string; balanceMinor: bigint; entriesMinor: bigint }[]>`
    select a.id, a.balance_minor as "balanceMinor", coalesce(sum(e.amount_minor), 0)::int8 as "entriesMinor"
    from accounts a left join entries e on e.account_id = a.id group by a.id`;
  const drifted = rows.filter((row) => row.balanceMinor !== row.entriesMinor);
  if (drifted.length > 0) throw context.fail(`${drifted.length} balances differ from their entries`);
  const restored = customers.filter((id) => rows.find((row) => row.id === id)?.balanceMinor === fundingMinor);
  if (restored.length !== customers.length)
    throw context.fail(`${customers.length - restored.length} customers do not hold their funding again`);
  const [journals] = await drill.sql<{ kinds: string[] }[]>`
    select array_agg(kind order by created_at, kind) as kinds from journal_transactions`;
  context.figure(
    'customersRestored',
    restored.length,
    `${restored.length} customers hold ${formatAmount(fundingMinor, stellarDecimals)} XLM again; journals: ${journals?.kinds.join(', ')}`,
  );
}
