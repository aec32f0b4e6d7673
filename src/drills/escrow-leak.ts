import { randomUUID } from 'node:crypto';
import { withTransaction } from '../platform/db/transaction.ts';
import { stroopsPerUnit } from '../stellar/units.ts';
import {
  approvingAdmin,
  escrowFundingMinor,
  expectBalances,
  expectSelfApprovalRefused,
  holdMinor,
  openEscrowWorld,
  type ProposalAnswer,
  withCellEnv,
  xlm,
} from './escrow-support.ts';
import type { Drill, DrillContext } from './harness.ts';
import {
  expectSnapshotWithFindings,
  type Finding,
  runScheduledTask,
  type SandboxService,
} from './sandbox-service.ts';
import { alertExpression, api, checkLedgerBalanced, metricValue, scrapeMetrics } from './support.ts';

/** What the hand-made posting moved from the payer into escrow, with no hold behind it. */
const leakMinor = 7n * stroopsPerUnit;
const detectionMsMax = 20_000;
const incidentRef = 'DRILL-escrow-leak';

type EscrowReport = {
  leaking: boolean;
  accounts: { asset: string; balance: string; openHolds: string; difference: string }[];
  findings: Finding[];
};

/**
 * The escrow part of docs/runbooks/double-payout-or-escrow-leak.md against `settledesk serve`: a
 * hold is open, then someone posts a journal by hand (SQL, the ledger's triggers in force, so it
 * is balanced) that moves money from the payer into `escrow` with no hold behind it. The
 * service's scheduled escrow detector must open an `escrow_leak` finding (the EscrowLeak alert's
 * series on /metrics) and triage must show the difference. The runbook's cells find the journal
 * and the escrow account, propose the two-person adjustment that returns the money, a second admin
 * approves it (the proposer cannot), and the detector resolves the finding. Every account then
 * holds what the hold alone explains and the ledger sums to zero.
 */
export const escrowLeakDrill: Drill = {
  name: 'escrow-leak',
  runbook: 'double-payout-or-escrow-leak.md',
  description:
    'a journal into escrow with no hold; the escrow detector finds it, triage shows it, the runbook ' +
    'returns the money by a two-person adjustment and the finding resolves',
  run: async (context) => {
    const { drill, payer, payee, hold } = await openEscrowWorld(context);

    await context.step('the escrow detector runs clean before the fault', async () => {
      await runScheduledTask(drill, 'reconcile_escrow');
      const open = metricValue(await scrapeMetrics(drill.service), 'reconciliation_findings_open', {
        kind: 'escrow_leak',
      });
      if (open !== 0) throw context.fail(`reconciliation_findings_open{kind="escrow_leak"} is ${open}`);
    });

    const fault = await context.step('fault: a journal moves the payer’s money into escrow, no hold', () =>
      plantLeak(context, drill, payer),
    );
    const faultStarted = performance.now();

    await context.step('detection: the scheduled escrow detector opens escrow_leak on /metrics', async () => {
      if (!alertExpression('EscrowLeak').includes('reconciliation_findings_open{kind="escrow_leak"}'))
        throw context.fail('the EscrowLeak alert is no longer built on reconciliation_findings_open');
      await context.waitFor(
        'reconciliation_findings_open{kind="escrow_leak"} to be 1 on /metrics',
        async () => {
          await runScheduledTask(drill, 'reconcile_escrow');
          const text = await scrapeMetrics(drill.service);
          return metricValue(text, 'reconciliation_findings_open', { kind: 'escrow_leak' }) === 1
            ? true
            : undefined;
        },
        detectionMsMax,
      );
      const detectionMs = Math.round(performance.now() - faultStarted);
      context.figure(
        'detectionMs',
        detectionMs,
        `the posting to the open finding on /metrics: ${detectionMs} ms`,
      );
    });

    const finding = await context.step('triage: the escrow report and the runbook’s show-escrow-leaks', () =>
      triage(context, drill),
    );

    await context.step('runbook: capture the evidence, find the journal and the escrow account', async () => {
      Object.assign(context.env, { INCIDENT_REF: incidentRef });
      await context.cells(['take-snapshot'], { yes: true });
      await context.expectAfter('take-snapshot', 'no snapshot holds the escrow finding', () =>
        expectSnapshotWithFindings(drill, incidentRef, 'escrow', 1),
      );
      const [journals] = await context.cells(['list-escrow-journals']);
      await context.expectAfter(
        'list-escrow-journals',
        'it does not show the journal and only it',
        async () => {
          const text = journals?.stdout ?? '';
          for (const expected of [fault.journalId, payer, fault.escrowAccountId, '(2 rows)'])
            if (!text.includes(expected)) throw new Error(`its output does not name ${expected}: ${text}`);
        },
      );
    });

    const proposal = await context.step(
      'runbook: one admin proposes the adjustment; nothing moves',
      async () => {
        const env = {
          SETTLEDESK_TOKEN: drill.tokens.admin,
          ESCROW_ACCOUNT_ID: fault.escrowAccountId,
          ACCOUNT_ID: payer,
          AMOUNT: xlm(leakMinor),
          JOURNAL_ID: fault.journalId,
          FINDING_ID: finding.id,
        };
        const [proposed] = await withCellEnv(context, env, () =>
          context.cells(['propose-escrow-adjustment'], { yes: true }),
        );
        const answer = await context.expectAfter(
          'propose-escrow-adjustment',
          'it printed no proposal',
          async () => JSON.parse(proposed?.stdout ?? '') as ProposalAnswer,
        );
        if (answer.action !== 'ledger.adjustment' || answer.state !== 'pending')
          throw context.fail(`the proposal is ${JSON.stringify(answer)}`);
        await expectBalances(context, drill, 'after the proposal alone', {
          [payer]: escrowFundingMinor - holdMinor - leakMinor,
          escrow: holdMinor + leakMinor,
        });
        const [pending] = await context.cells(['list-pending-proposals']);
        if (!pending?.stdout.includes(answer.id))
          throw context.fail(`list-pending-proposals does not list ${answer.id}`);
        await expectSelfApprovalRefused(context, answer);
        return answer;
      },
    );

    await context.step('runbook: a second admin approves it; the money goes back once', async () => {
      await withCellEnv(
        context,
        { SETTLEDESK_OPERATOR: approvingAdmin, PROPOSAL_ID: proposal.id, PAYLOAD_HASH: proposal.payloadHash },
        () => context.cells(['approve-adjustment'], { yes: true }),
      );
      await expectBalances(context, drill, 'after the approval', {
        [payer]: escrowFundingMinor - holdMinor,
        [payee]: escrowFundingMinor,
        escrow: holdMinor,
      });
      const [journals] = await drill.sql<{ count: number }[]>`
        select count(*)::int as count from journal_transactions where kind = 'adjustment'`;
      if (journals?.count !== 1) throw context.fail(`${journals?.count ?? 0} adjustment journals, not 1`);
    });

    await context.step('runbook: the escrow detector resolves the finding', async () => {
      await context.cells(['check-escrow-repaired'], { yes: true });
      await runScheduledTask(drill, 'reconcile_escrow');
      const open = metricValue(await scrapeMetrics(drill.service), 'reconciliation_findings_open', {
        kind: 'escrow_leak',
      });
      if (open !== 0)
        throw context.fail(`reconciliation_findings_open{kind="escrow_leak"} is ${open} after the repair`);
      const report = await api<EscrowReport>(
        drill.service,
        drill.tokens.operator,
        'GET',
        '/internal/incident/escrow-leaks',
      );
      if (report.body.leaking || report.body.findings.length > 0)
        throw context.fail(`the escrow report after the repair: ${JSON.stringify(report.body)}`);
    });

    await context.step('money: the ledger sums to zero; escrow holds exactly the open hold', async () => {
      await checkLedgerBalanced(context, { triage: true });
      const detail = await api<{ state: string; remaining: string }>(
        drill.service,
        drill.tokens.operator,
        'GET',
        `/v1/escrow/holds/${hold.id}`,
      );
      if (detail.body.state !== 'held' || detail.body.remaining !== xlm(holdMinor))
        throw context.fail(`the hold is ${JSON.stringify(detail.body)}`);
      context.figure(
        'escrowMatchesHolds',
        1,
        `escrow holds ${xlm(holdMinor)} XLM, the open hold's remainder`,
      );
    });
  },
};

/**
 * The fault: a journal posted by hand, balanced (the triggers are in force), that takes money from
 * the payer into the asset's `escrow` account and creates no hold; both balances updated as the
 * ledger does, so only the escrow detector can see it.
 */
async function plantLeak(
  context: DrillContext,
  drill: SandboxService,
  payer: string,
): Promise<{ journalId: string; escrowAccountId: string }> {
  const journalId = randomUUID();
  const escrowAccountId = await withTransaction(drill.sql, async (tx) => {
    const [escrow] = await tx<{ id: string }[]>`
      select id from accounts where type = 'escrow' and asset = 'XLM' for update`;
    if (!escrow) throw context.fail('no XLM escrow account');
    await tx`insert into journal_transactions (id, kind, reference)
             values (${journalId}::uuid, 'manual_transfer', 'ops-ticket-escrow-4712')`;
    await tx`insert into entries (journal_id, account_id, asset, amount_minor)
             values (${journalId}::uuid, ${payer}::uuid, 'XLM', ${-leakMinor}::int8),
                    (${journalId}::uuid, ${escrow.id}::uuid, 'XLM', ${leakMinor}::int8)`;
    await tx`update accounts set balance_minor = balance_minor - ${leakMinor}::int8 where id = ${payer}::uuid`;
    await tx`update accounts set balance_minor = balance_minor + ${leakMinor}::int8 where id = ${escrow.id}::uuid`;
    return escrow.id;
  });
  context.note(`journal ${journalId}: ${xlm(leakMinor)} XLM from the payer into escrow, no hold`);
  return { journalId, escrowAccountId };
}

/** The escrow report shows the leak as the difference, with its finding; so does the runbook's cell. */
async function triage(context: DrillContext, drill: SandboxService): Promise<Finding> {
  const report = await api<EscrowReport>(
    drill.service,
    drill.tokens.operator,
    'GET',
    '/internal/incident/escrow-leaks',
  );
  const xlmRow = report.body.accounts.find((row) => row.asset === 'XLM');
  const finding = report.body.findings.find((candidate) => candidate.kind === 'escrow_leak');
  if (
    report.status !== 200 ||
    !report.body.leaking ||
    xlmRow?.difference !== xlm(leakMinor) ||
    xlmRow.openHolds !== xlm(holdMinor) ||
    finding?.subject !== 'XLM'
  )
    throw context.fail(
      `GET /internal/incident/escrow-leaks: ${report.status} ${JSON.stringify(report.body)}`,
    );
  const [shown] = await context.cells(['show-escrow-leaks']);
  await context.expectAfter('show-escrow-leaks', 'it does not show the leak', async () => {
    for (const expected of ['LEAKING', xlm(leakMinor), 'escrow_leak'])
      if (!shown?.stdout.includes(expected)) throw new Error(`its output does not name ${expected}`);
  });
  return finding;
}
