import { Asset, Horizon, Keypair, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { formatAmount, parseAmount } from '../money/money.ts';
import { loadConfig } from '../platform/config.ts';
import { findStellar } from '../stellar/connect.ts';
import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { stellarDecimals, stroopsPerUnit } from '../stellar/units.ts';
import { loadWallet } from '../stellar/wallet.ts';
import type { Drill, DrillContext } from './harness.ts';
import {
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
const payoutAmount = '25';
const unknownAmount = '7';
/** What friendbot gives a new account on the sandbox (src/sandbox/limits.ts). */
const friendbotMinor = 10_000n * stroopsPerUnit;
/**
 * outgoing_payments books the fees the hot wallet paid as unbooked outflows, so the drift is what
 * left; a difference beyond it up to this (a few fees) is tolerated.
 */
const feesToleranceMinor = 10_000n;
const settleMsMax = 30_000;
const detectionMsMax = 20_000;
const rogueTimeoutSeconds = 30;

type Payments = { pagingToken: string; transactionHash: string; attribution: string }[];

/**
 * docs/runbooks/double-payout-or-escrow-leak.md against `settledesk serve` and its sandbox: a payout
 * settles for real, then someone holding the hot wallet's key pays the same destination the same
 * amount again, and pays an unrelated address, straight on the network with the SDK. The service's
 * own scheduled outgoing_payments task must report a `double_payout` for that payout and an
 * `unknown_outgoing_payment` on /metrics (the DoublePayout and UnknownOutgoingPayment alerts'
 * metric), chain_balance a `chain_ledger_drift` for the money that left outside the ledger, and
 * triage must list them with their evidence. The runbook's cells freeze payouts, hold every money
 * movement, capture the evidence and investigate; afterwards the ledger is balanced, the payout was
 * settled once, and nothing else moved.
 */
export const doublePayoutDrill: Drill = {
  name: 'double-payout',
  runbook: 'double-payout-or-escrow-leak.md',
  description:
    'a settled payout paid again, and an unrelated payment, from the hot wallet outside settledesk; ' +
    'detection pages, the runbook freezes and holds money movement, the ledger stays balanced',
  run: async (context) => {
    const drill = await startSandboxService(context, {
      // The drift finding needs no grace in a drill: the rogue money left for good.
      RECONCILIATION_CHAIN_DRIFT_GRACE_SECONDS: '0',
    });
    const stellar = await context.step('find the sandbox network and the hot wallet', async () => {
      const config = loadConfig(drill.env);
      const endpoints = await findStellar(config);
      const wallet = await loadWallet(config);
      context.note(`hot wallet ${wallet.hotWallet.publicKey()} on ${endpoints.horizonUrls[0]}`);
      return { endpoints, hotWallet: wallet.hotWallet };
    });
    const horizon = new Horizon.Server(stellar.endpoints.horizonUrls[0] ?? '', { allowHttp: true });
    const [customer] = await context.step('open and fund a customer account', () =>
      openFundedCustomers(context, drill, [fundingMinor]),
    );
    if (customer === undefined) throw context.fail('no customer account');
    const recipients = await context.step(
      'create the payout recipient and an unrelated address',
      async () => ({
        payee: await fundedAddress(stellar.endpoints),
        stranger: await fundedAddress(stellar.endpoints),
      }),
    );

    const payoutId = await context.step(`a ${payoutAmount} XLM payout settles on the sandbox`, async () => {
      const accepted = await api<{ id: string }>(
        drill.service,
        drill.tokens.service,
        'POST',
        '/v1/payouts',
        { sourceAccountId: customer, destination: recipients.payee, asset: 'XLM', amount: payoutAmount },
        { 'idempotency-key': idempotencyKey(context) },
      );
      if (accepted.status !== 201) throw context.fail(`POST /v1/payouts answered ${accepted.status}`);
      const id = accepted.body.id;
      await context.waitFor(
        `payout ${id} to settle`,
        async () => {
          const payout = await api<{ state: string }>(
            drill.service,
            drill.tokens.service,
            'GET',
            `/v1/payouts/${id}`,
          );
          if (payout.body.state === 'failed' || payout.body.state === 'manual_review')
            throw context.fail(`payout ${id} ended ${payout.body.state}`);
          return payout.body.state === 'settled' ? true : undefined;
        },
        settleMsMax,
      );
      return id;
    });

    await context.step('reconciliation is clean before the fault (and chain_balance has its baseline)', () =>
      cleanBefore(context, drill),
    );
    const before = await ledgerCounts(drill);

    const fault = await context.step(
      'fault: the hot wallet key pays the payee again, and pays an unrelated address, outside settledesk',
      async () => {
        const at = new Date();
        const again = await rogueTransfer(
          horizon,
          stellar.endpoints,
          stellar.hotWallet,
          recipients.payee,
          payoutAmount,
        );
        const unknown = await rogueTransfer(
          horizon,
          stellar.endpoints,
          stellar.hotWallet,
          recipients.stranger,
          unknownAmount,
        );
        context.note(`second payment to the payee ${again}; unknown payment ${unknown}`);
        return { at, started: performance.now(), again, unknown };
      },
    );

    await context.step('detection: the scheduled outgoing_payments task pages on /metrics', async () => {
      const alerts = [
        ['DoublePayout', 'double_payout'],
        ['UnknownOutgoingPayment', 'unknown_outgoing_payment'],
      ] as const;
      for (const [alert, kind] of alerts)
        if (!alertExpression(alert).includes(`reconciliation_findings_open{kind="${kind}"}`))
          throw context.fail(
            `the ${alert} alert is no longer built on reconciliation_findings_open{kind="${kind}"}`,
          );
      const metrics = await context.waitFor(
        'reconciliation_findings_open{kind="double_payout"} and {kind="unknown_outgoing_payment"} above 0',
        async () => {
          await runScheduledTask(drill, 'reconcile_outgoing_payments');
          const text = await scrapeMetrics(drill.service);
          const open = (kind: string) => metricValue(text, 'reconciliation_findings_open', { kind });
          return open('double_payout') >= 1 && open('unknown_outgoing_payment') >= 1 ? text : undefined;
        },
        detectionMsMax,
      );
      context.figure(
        'detectionMs',
        Math.round(performance.now() - fault.started),
        `the rogue payments to both findings on the service's /metrics: ${Math.round(performance.now() - fault.started)} ms`,
      );
      for (const kind of ['double_payout', 'unknown_outgoing_payment']) {
        const created = metricValue(metrics, 'reconciliation_findings_total', { kind });
        if (created < 1)
          throw context.fail(`reconciliation_findings_total{kind="${kind}"} is ${created}, not 1`);
      }
      await context.waitFor(
        'reconciliation_findings_open{kind="chain_ledger_drift"} above 0',
        async () => {
          await runScheduledTask(drill, 'reconcile_chain_balance');
          const text = await scrapeMetrics(drill.service);
          return metricValue(text, 'reconciliation_findings_open', { kind: 'chain_ledger_drift' }) >= 1
            ? true
            : undefined;
        },
        detectionMsMax,
      );
    });

    const findings = await context.step(
      'triage: /internal/incident/double-payouts lists both, with evidence',
      async () => {
        const triage = await api<{ findings: Finding[] }>(
          drill.service,
          drill.tokens.operator,
          'GET',
          '/internal/incident/double-payouts',
        );
        if (triage.status !== 200)
          throw context.fail(`GET /internal/incident/double-payouts answered ${triage.status}`);
        const found = checkDoublePayoutFindings(
          context,
          triage.body.findings,
          payoutId,
          recipients.stranger,
          fault,
        );
        const check = await context.cli(['triage', 'double-payouts', '--check'], context.env);
        if (check.code !== 1)
          throw context.fail(`settledesk triage double-payouts --check exited ${check.code}, not 1`);
        return found;
      },
    );

    Object.assign(context.env, {
      PAYOUT_ID: payoutId,
      HOT_WALLET: stellar.hotWallet.publicKey(),
      INCIDENT_REF: 'DRILL-double-payout',
    });
    await context.step('runbook: freeze payouts and hold every money movement', async () => {
      await context.cells(['freeze-payouts', 'enter-read-only'], { yes: true });
      await context.expectAfter('freeze-payouts', 'payouts are not frozen', async () => {
        await expectModes(drill, { payoutsFrozen: true });
      });
      await context.expectAfter('enter-read-only', 'a new payout is still accepted', async () => {
        const refused = await api<{ type?: string }>(
          drill.service,
          drill.tokens.service,
          'POST',
          '/v1/payouts',
          { sourceAccountId: customer, destination: recipients.payee, asset: 'XLM', amount: '1' },
          { 'idempotency-key': idempotencyKey(context) },
        );
        expectReadOnlyRefusal('POST /v1/payouts', refused);
      });
    });
    await context.step('runbook: see the findings, capture the evidence, confirm the freeze', async () => {
      const [shown] = await context.cells(['show-double-payouts']);
      await context.expectAfter('show-double-payouts', 'the findings are not shown', async () => {
        for (const expected of [payoutId, findings.unknown.subject, 'unknown_outgoing_payment'])
          if (!shown?.stdout.includes(expected)) throw new Error(`its output does not name ${expected}`);
      });
      await context.cells(['take-snapshot'], { yes: true });
      await context.expectAfter('take-snapshot', 'no snapshot holds the findings', async () => {
        await expectSnapshotWithFindings(drill, 'DRILL-double-payout', 'doublePayouts', 2);
      });
      const [mode] = await context.cells(['check-mode']);
      await context.expectAfter('check-mode', 'it does not say payouts are frozen', async () => {
        if (!/payouts frozen: yes/.test(mode?.stdout ?? '')) throw new Error(mode?.stdout ?? '');
      });
    });
    await context.step('runbook: investigate the payout, the hot wallet and the findings', async () => {
      const [timeline, , payments] = await context.cells([
        'show-payout-timeline',
        'search-logs-payout',
        'list-hot-wallet-payments',
      ]);
      await context.expectAfter(
        'show-payout-timeline',
        'the timeline does not show the finding',
        async () => {
          if (!timeline?.stdout.includes('double_payout'))
            throw new Error('no double_payout in its findings');
        },
      );
      await context.expectAfter('list-hot-wallet-payments', 'the rogue payments are not listed', async () => {
        for (const hash of [fault.again, fault.unknown])
          if (!payments?.stdout.includes(hash)) throw new Error(`transaction ${hash} is not in its output`);
      });
      await context.cells(['rerun-outgoing-detectors'], { yes: true });
      const [open] = await context.cells(['list-open-findings']);
      await context.expectAfter('rerun-outgoing-detectors', 'the findings changed on a re-run', async () => {
        const rows = await drill.sql<{ kind: string; count: number }[]>`
          select kind, count(*)::int as count from reconciliation_findings group by kind order by kind`;
        const counts = Object.fromEntries(rows.map((row) => [row.kind, row.count]));
        const expected = { chain_ledger_drift: 1, double_payout: 1, unknown_outgoing_payment: 1 };
        if (JSON.stringify(counts) !== JSON.stringify(expected))
          throw new Error(`findings by kind ${JSON.stringify(counts)}, expected ${JSON.stringify(expected)}`);
      });
      await context.expectAfter('list-open-findings', 'an open finding is missing', async () => {
        for (const kind of ['double_payout', 'unknown_outgoing_payment', 'chain_ledger_drift'])
          if (!open?.stdout.includes(kind)) throw new Error(`no open ${kind} in its output`);
      });
    });
    await context.step('runbook: releasing the kill switches takes a second admin', async () => {
      await context.cells(['propose-unfreeze', 'propose-standard'], { yes: true });
      const [listed] = await context.cells(['list-pending-proposals']);
      const releases = [
        ['propose-unfreeze', 'controls.unfreeze_payouts'],
        ['propose-standard', 'controls.restore_standard'],
      ] as const;
      for (const [cell, action] of releases)
        await context.expectAfter(cell, `no pending ${action} proposal is listed`, async () => {
          const [pending] = await drill.sql<{ id: string }[]>`
            select id from proposals where action = ${action}::text and state = 'pending'`;
          if (!pending || !listed?.stdout.includes(pending.id)) throw new Error(listed?.stdout ?? '');
        });
      await context.expectAfter('propose-unfreeze', 'a kill switch was released by one person', async () => {
        await expectModes(drill, { payoutsFrozen: true, paymentsMode: 'read_only' });
      });
    });
    await context.step(
      'runbook: the ledger is balanced, and the double-payout findings stay open',
      async () => {
        const check = await context.cellReports('check-ledger', 'double-payout findings are open');
        await context.expectAfter(
          'check-ledger',
          'it failed for another reason than the open findings',
          async () => {
            if (!check.stdout.includes('ledger balanced'))
              throw new Error(`ledger check: ${check.stdout}${check.stderr}`);
            if (!check.stderr.includes('open double-payout findings')) throw new Error(check.stderr);
          },
        );
      },
    );
    await context.step(
      'runbook: each finding, dealt with, is closed on the record; then the check passes',
      async () => {
        const open = await api<{ findings: Finding[] }>(
          drill.service,
          drill.tokens.operator,
          'GET',
          '/internal/incident/double-payouts',
        );
        for (const finding of open.body.findings) {
          context.env.FINDING_ID = finding.id;
          context.env.CLOSE_REASON = `drill: ${finding.kind} recorded in the incident`;
          await context.cells(['close-finding'], { yes: true });
        }
        await context.cells(['check-ledger']);
      },
    );
    await context.step('money: the payout settled once, nothing else moved, the loss is on the record', () =>
      moneyIntact(context, drill, {
        customer,
        payoutId,
        before,
        fault: fault.at,
        horizon,
        recipients,
      }),
    );
  },
};

async function fundedAddress(endpoints: StellarEndpoints): Promise<string> {
  const keypair = Keypair.random();
  const response = await fetch(`${endpoints.friendbotUrl}?addr=${keypair.publicKey()}`, {
    signal: AbortSignal.timeout(10_000),
  });
  await response.body?.cancel();
  if (!response.ok) throw new Error(`friendbot answered ${response.status}`);
  return keypair.publicKey();
}

/** A payment straight from the hot wallet, signed with its secret, as anyone holding the key could. */
async function rogueTransfer(
  horizon: Horizon.Server,
  endpoints: StellarEndpoints,
  hotWallet: Keypair,
  destination: string,
  amount: string,
): Promise<string> {
  const account = await horizon.loadAccount(hotWallet.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: '100',
    networkPassphrase: endpoints.networkPassphrase,
  })
    .addOperation(Operation.payment({ destination, asset: Asset.native(), amount }))
    .setTimeout(rogueTimeoutSeconds)
    .build();
  transaction.sign(hotWallet);
  const result = await horizon.submitTransaction(transaction);
  return result.hash;
}

/** The outgoing detectors run clean in the service's worker, and chain_balance took its baseline. */
async function cleanBefore(context: DrillContext, drill: SandboxService): Promise<void> {
  await context.waitFor(
    'chain_balance to take the hot wallet baseline',
    async () => {
      await runScheduledTask(drill, 'reconcile_outgoing_payments');
      await runScheduledTask(drill, 'reconcile_chain_balance');
      const [row] = await drill.sql<{ baseline: string | null }[]>`
        select state -> 'baselines' ->> 'XLM' as baseline from reconciliation_checkpoints
        where detector = 'chain_balance'`;
      return row?.baseline ? row.baseline : undefined;
    },
    detectionMsMax,
  );
  const text = await scrapeMetrics(drill.service);
  for (const kind of ['double_payout', 'unknown_outgoing_payment', 'chain_ledger_drift']) {
    const open = metricValue(text, 'reconciliation_findings_open', { kind });
    const created = metricValue(text, 'reconciliation_findings_total', { kind });
    if (open !== 0 || created !== 0)
      throw context.fail(
        `before the fault: ${open} open and ${created} created ${kind} findings on /metrics`,
      );
  }
}

type LedgerCounts = { journals: number; payouts: number };

async function ledgerCounts(drill: SandboxService): Promise<LedgerCounts> {
  const [row] = await drill.sql<LedgerCounts[]>`
    select (select count(*)::int from journal_transactions) as journals,
           (select count(*)::int from payouts) as payouts`;
  return row ?? { journals: 0, payouts: 0 };
}

function checkDoublePayoutFindings(
  context: DrillContext,
  findings: readonly Finding[],
  payoutId: string,
  stranger: string,
  fault: { again: string; unknown: string },
): { double: Finding; unknown: Finding } {
  const double = findings.find((finding) => finding.kind === 'double_payout');
  const unknown = findings.find((finding) => finding.kind === 'unknown_outgoing_payment');
  if (findings.length !== 2 || !double || !unknown)
    throw context.fail(
      `expected one double_payout and one unknown_outgoing_payment, got ${JSON.stringify(findings)}`,
    );
  const payments = (double.evidence.payments ?? []) as Payments;
  const attributions = payments.map((payment) => payment.attribution).sort();
  if (
    double.subject !== payoutId ||
    JSON.stringify(attributions) !== JSON.stringify(['attempt', 'likeness']) ||
    !payments.some((payment) => payment.transactionHash === fault.again)
  )
    throw context.fail(
      `the double_payout finding does not show the payout's two payments: ${JSON.stringify(double)}`,
    );
  if (
    unknown.evidence.destination !== stranger ||
    unknown.evidence.amount !== formatAmount(BigInt(unknownAmount) * stroopsPerUnit, stellarDecimals) ||
    unknown.evidence.transactionHash !== fault.unknown
  )
    throw context.fail(
      `the unknown_outgoing_payment finding does not show the payment: ${JSON.stringify(unknown)}`,
    );
  context.note(`double_payout ${double.id} for payout ${payoutId}; unknown_outgoing_payment ${unknown.id}`);
  return { double, unknown };
}

async function moneyIntact(
  context: DrillContext,
  drill: SandboxService,
  facts: {
    customer: string;
    payoutId: string;
    before: LedgerCounts;
    fault: Date;
    horizon: Horizon.Server;
    recipients: { payee: string; stranger: string };
  },
): Promise<void> {
  await checkLedgerBalanced(context, { triage: true });

  const [payout] = await drill.sql<
    { state: string; settledTransitions: number; succeededAttempts: number }[]
  >`
    select p.state,
           (select count(*)::int from payout_state_history h where h.payout_id = p.id and h.to_state = 'settled')
             as "settledTransitions",
           (select count(*)::int from settlement_attempt_payouts ap join settlement_attempts a on a.id = ap.attempt_id
             where ap.payout_id = p.id and a.state = 'succeeded') as "succeededAttempts"
    from payouts p where p.id = ${facts.payoutId}::uuid`;
  if (payout?.state !== 'settled' || payout.settledTransitions !== 1 || payout.succeededAttempts !== 1)
    throw context.fail(`the payout is not settled exactly once: ${JSON.stringify(payout)}`);

  const after = await ledgerCounts(drill);
  const [moved] = await drill.sql<{ count: number }[]>`
    select count(*)::int as count from journal_transactions where created_at >= ${facts.fault}::timestamptz`;
  if (
    after.journals !== facts.before.journals ||
    after.payouts !== facts.before.payouts ||
    moved?.count !== 0
  )
    throw context.fail(
      `money moved after the fault: ${after.journals - facts.before.journals} journals, ${after.payouts - facts.before.payouts} payouts`,
    );

  const payoutMinor = BigInt(payoutAmount) * stroopsPerUnit;
  const balances = await drill.sql<
    { id: string; type: string; balanceMinor: bigint; entriesMinor: bigint }[]
  >`
    select a.id, a.type, a.balance_minor as "balanceMinor", coalesce(sum(e.amount_minor), 0)::int8 as "entriesMinor"
    from accounts a left join entries e on e.account_id = a.id
    where a.asset = 'XLM' group by a.id`;
  const of = (predicate: (row: (typeof balances)[number]) => boolean) =>
    balances.find(predicate)?.balanceMinor;
  const expected: [string, bigint | undefined, bigint][] = [
    ['customer', of((row) => row.id === facts.customer), fundingMinor - payoutMinor],
    ['payout_clearing', of((row) => row.type === 'payout_clearing'), 0n],
    ['settlement', of((row) => row.type === 'settlement'), payoutMinor],
  ];
  for (const [what, actual, wanted] of expected)
    if (actual !== wanted) throw context.fail(`the ${what} account holds ${actual}, not ${wanted}`);
  const drifted = balances.filter((row) => row.balanceMinor !== row.entriesMinor);
  if (drifted.length > 0) throw context.fail(`${drifted.length} balances differ from their entries`);

  // On chain the loss is real: the payee holds the payout twice, the stranger the unknown payment.
  const unknownMinor = BigInt(unknownAmount) * stroopsPerUnit;
  const payee = await nativeBalance(facts.horizon, facts.recipients.payee);
  const stranger = await nativeBalance(facts.horizon, facts.recipients.stranger);
  if (payee !== friendbotMinor + 2n * payoutMinor || stranger !== friendbotMinor + unknownMinor)
    throw context.fail(`on chain the payee holds ${payee} and the stranger ${stranger} stroops`);
  const [drift] = await drill.sql<{ drift: string }[]>`
    select evidence ->> 'drift' as drift from reconciliation_findings
    where kind = 'chain_ledger_drift' and resolved_at is null`;
  const driftMinor = parseAmount(drift?.drift ?? '', { precision: stellarDecimals, allowNegative: true });
  const leftMinor = payoutMinor + unknownMinor;
  if (!driftMinor.ok || -driftMinor.minor < leftMinor || -driftMinor.minor > leftMinor + feesToleranceMinor)
    throw context.fail(
      `chain_ledger_drift is ${drift?.drift}, not the ${formatAmount(leftMinor, stellarDecimals)} XLM that left`,
    );
  context.figure(
    'lostOnChainMinor',
    Number(leftMinor),
    `${formatAmount(leftMinor, stellarDecimals)} XLM left the hot wallet outside the ledger: chain_ledger_drift ${drift?.drift}, ` +
      'the ledger balanced, the payout settled once, no journal or payout after the fault',
  );
  const open = await drill.sql<{ kind: string }[]>`
    select kind from reconciliation_findings where resolved_at is null order by kind`;
  context.figure(
    'openFindings',
    open.length,
    `${open.map((row) => row.kind).join(', ')} stays open: the drift lasts until the money is back`,
  );
  const [closed] = await drill.sql<{ count: number }[]>`
    select count(*)::int as count from reconciliation_findings
    where kind in ('double_payout', 'unknown_outgoing_payment') and evidence ? 'closedBy'`;
  context.figure(
    'closedFindings',
    closed?.count ?? 0,
    `${closed?.count ?? 0} findings closed by hand, on the record`,
  );
}

async function nativeBalance(horizon: Horizon.Server, address: string): Promise<bigint> {
  const account = await horizon.loadAccount(address);
  const native = account.balances.find((line) => line.asset_type === 'native')?.balance ?? '0';
  const parsed = parseAmount(native, { precision: stellarDecimals, allowZero: true });
  if (!parsed.ok) throw new Error(`unreadable balance ${native}`);
  return parsed.minor;
}
