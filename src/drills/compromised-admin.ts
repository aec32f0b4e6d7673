import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Keypair } from '@stellar/stellar-sdk';
import { selectProposal } from '../approvals/data.ts';
import type { Sql } from '../platform/db/types.ts';
import { findRunningSandbox, type SandboxAddress } from '../sandbox/ownership.ts';
import { type Drill, type DrillContext, DrillFailure, sleep } from './harness.ts';
import {
  type ApiAnswer,
  drillDatabase,
  issueToken,
  metricValue,
  openAccount,
  openSql,
  scrapeMetrics,
  api as serviceApi,
  triageSummary,
  xlmMinor,
} from './support.ts';

const compromised = 'drill-admin-mallory';
const colleague = 'drill-admin-alice';
const reviewer = 'drill-admin-bob';
const accessReloadMs = 1_000;
/** Suspension is announced by NOTIFY; the periodic reload bounds a missed one, with slack for its query. */
const refusalBoundMs = accessReloadMs + 2_000;
const payoutPollMs = 200;
/** A frozen payout must still be `accepted` after this many settlement rounds' worth of time. */
const frozenHoldMs = payoutPollMs * 10;
const settleMsMax = 30_000;
const requestTimeoutMs = 5_000;
const fundedXlm = '100';
const payoutBeforeXlm = '5';
const payoutFrozenXlm = '10';
const stolenXlm = '50';

type Answer = ApiAnswer<Record<string, unknown>>;

/**
 * docs/runbooks/compromised-admin.md against `settledesk serve` on the sandbox: an admin token in
 * the wrong hands proposes a ledger adjustment that moves a customer's money to another account
 * (and cannot approve it alone). Detection through `approval_transitions_total`, the triage
 * summary and the log search; then the runbook's cells suspend the admin (their token gets 401 at
 * once), freeze payouts, list and reject their pending proposals and review the audit log. A payout
 * made during the freeze waits; unfreezing is a proposal that executes only when a second admin
 * approves it. Money: the proposal never executed, balances are what the legitimate payouts left,
 * every payout settled once, and the ledger is balanced.
 */
export const compromisedAdminDrill: Drill = {
  name: 'compromised-admin',
  runbook: 'compromised-admin.md',
  description:
    "an admin token proposes moving a customer's money; the runbook suspends the admin (401 at once), " +
    'freezes payouts, rejects the proposal and reviews the audit log; nothing moves, unfreezing takes a second admin',
  run: async (context) => {
    const databaseUrl = await context.step('create a database for the drill', () => drillDatabase(context));
    const dataDir = join(context.dir, 'data');
    const serviceEnv = {
      DATABASE_URL: databaseUrl,
      SETTLEDESK_KEYRING_KEY: randomBytes(32).toString('base64'),
      SETTLEDESK_DATA_DIR: dataDir,
      ACCESS_RELOAD_MS: String(accessReloadMs),
      SANDBOX_PORT: '0',
      SANDBOX_LEDGER_CLOSE_MS: '200',
      PAYOUT_POLL_MS: String(payoutPollMs),
      PAYOUT_CHANNELS: '2',
      DEPOSIT_WATCHER_POLL_MS: '200',
      LOG_LEVEL: 'info',
    };
    const service = await context.step(
      'start settledesk serve with the job worker and the sandbox network',
      () => context.startService(serviceEnv),
    );
    Object.assign(context.env, {
      ...serviceEnv,
      SETTLEDESK_URL: service.url,
      SETTLEDESK_OPERATOR: 'drill-oncall',
      ADMIN_SUBJECT: compromised,
      LOG_FILE: service.logFile,
      LOG_LEVEL: undefined,
    });
    const sql = openSql(databaseUrl);
    context.defer('close the drill database pool', () => sql.end({ timeout: 5 }));
    const sandbox = await findRunningSandbox(join(dataDir, 'sandbox'));
    if (sandbox === undefined) throw context.fail('settledesk serve published no sandbox address');

    const tokens = await context.step(
      'issue tokens: a service client, three admins, an operator',
      async () => ({
        service: (await issueToken(context, context.env, 'drill-payments-api', 'service')).token,
        mallory: (await issueToken(context, context.env, compromised, 'admin')).token,
        alice: (await issueToken(context, context.env, colleague, 'admin')).token,
        bob: (await issueToken(context, context.env, reviewer, 'admin')).token,
        operator: (await issueToken(context, context.env, 'drill-oncall', 'operator')).token,
      }),
    );
    context.env.SETTLEDESK_TOKEN = tokens.operator;
    const api: Api = (token, method, path, body) =>
      serviceApi(
        service,
        token,
        method,
        path,
        body,
        body === undefined ? {} : { 'idempotency-key': randomUUID() },
      );

    const money = await context.step(
      `a customer with ${fundedXlm} XLM deposited on chain, a second account, a payout that settles`,
      async () => {
        const victim = await openAccount(context, service, tokens.service, 'drill-customer');
        const mule = await openAccount(context, service, tokens.service, 'drill-other-customer');
        const funded = await context.cli(
          ['--json', 'sandbox', 'fund', '--account', victim, '--amount', fundedXlm],
          context.env,
        );
        if (funded.code !== 0)
          throw context.fail(`settledesk sandbox fund exited ${funded.code}: ${funded.stderr}`);
        const destination = await friendbotAccount(context, sandbox);
        const destinationBefore = await nativeBalance(sandbox, destination);
        const before = await pay(context, api, tokens.service, victim, destination, payoutBeforeXlm);
        await waitSettled(context, api, tokens.service, before);
        return { victim, mule, destination, destinationBefore, payouts: [before] };
      },
    );
    const fees = await feesAccount(sql);

    const attack = await context.step(
      'the compromised admin proposes moving the customer’s money to the other account',
      async () => {
        const proposed = await api(tokens.mallory, 'POST', '/v1/adjustments', {
          entries: [
            { accountId: money.victim, amount: `-${stolenXlm}` },
            { accountId: money.mule, amount: stolenXlm },
          ],
          reason: 'customer asked to move funds between their accounts',
          evidenceRef: 'ticket-drill-1',
        });
        if (proposed.status !== 202) throw context.fail(`POST /v1/adjustments answered ${proposed.status}`);
        const proposal = { id: String(proposed.body.id), payloadHash: String(proposed.body.payloadHash) };
        const alone = await api(tokens.mallory, 'POST', `/v1/approvals/${proposal.id}/approve`, {
          payloadHash: proposal.payloadHash,
        });
        if (alone.status !== 403 || alone.body.type !== 'approvals/self-approval')
          throw context.fail(
            `the proposer approving their own proposal answered ${alone.status} ${alone.body.type}`,
          );
        return { ...proposal, requestId: proposed.requestId };
      },
    );
    const legitimate = await context.step('a colleague has a legitimate proposal pending', async () => {
      const proposed = await api(tokens.alice, 'POST', '/v1/adjustments', {
        entries: [
          { accountId: fees, amount: '-1' },
          { accountId: money.victim, amount: '1' },
        ],
        reason: 'goodwill credit for a delayed payout',
        evidenceRef: 'ticket-drill-2',
      });
      if (proposed.status !== 202) throw context.fail(`POST /v1/adjustments answered ${proposed.status}`);
      return String(proposed.body.id);
    });

    await context.step(
      'detection: approval_transitions_total, the triage summary and the log search',
      async () => {
        const proposedCount = metricValue(await scrapeMetrics(service), 'approval_transitions_total', {
          action: 'ledger.adjustment',
          transition: 'proposed',
        });
        if (proposedCount !== 2)
          throw context.fail(
            `approval_transitions_total counts ${proposedCount} proposed adjustments, not 2`,
          );
        const summary = await triageSummary(context, context.env);
        if (summary.approvalsPending !== 2)
          throw context.fail(`the triage summary shows ${summary.approvalsPending} pending approvals, not 2`);
        const [search] = await context.cells(['search-logs-admin']);
        if (!search?.stdout.includes(attack.requestId))
          throw cellFailure(
            context,
            'search-logs-admin',
            `does not show the admin's request ${attack.requestId}`,
          );
        const [pending] = await context.cells(['pending-proposals']);
        for (const id of [attack.id, legitimate])
          if (!pending?.stdout.includes(id))
            throw cellFailure(context, 'pending-proposals', `does not list the pending proposal ${id}`);
      },
    );

    const suspendedAt = await context.step('runbook: suspend the admin', async () => {
      await context.cells(['suspend-admin'], { yes: true });
      return performance.now();
    });
    const refusedMs = await context.step(
      "the admin's token gets 401 at once; a colleague's still works",
      () =>
        context.expectAfter('suspend-admin', "the admin's token is still accepted", async () => {
          await context.waitFor(
            "the suspended admin's token to be refused",
            async () =>
              (await api(tokens.mallory, 'GET', '/v1/approvals?limit=1')).status === 401 ? true : undefined,
            refusalBoundMs,
          );
          const elapsed = Math.round(performance.now() - suspendedAt);
          const bystander = await api(tokens.alice, 'GET', '/v1/approvals?limit=1');
          if (bystander.status !== 200) throw new Error(`a colleague's token answered ${bystander.status}`);
          const [shown] = await context.cells(['show-suspension']);
          if (!shown?.stdout.includes('suspected compromised admin'))
            throw cellFailure(context, 'show-suspension', 'does not show the suspension');
          return elapsed;
        }),
    );
    context.figure(
      'suspensionToRefusedMs',
      refusedMs,
      `the admin's token was refused ${refusedMs} ms after suspend-admin finished`,
    );

    await context.step(
      'runbook: freeze payouts; the triage summary shows the freeze and the pending proposals',
      async () => {
        await context.cells(['freeze-payouts'], { yes: true });
        await context.expectAfter(
          'freeze-payouts',
          'the triage summary does not show frozen payouts',
          async () => {
            const summary = await triageSummary(context, context.env);
            if (
              !summary.controls.payoutsFrozen ||
              !summary.attention.includes('controls: payouts are frozen')
            )
              throw new Error(
                `controls ${JSON.stringify(summary.controls)}, attention ${JSON.stringify(summary.attention)}`,
              );
            if (summary.approvalsPending !== 2)
              throw new Error(`${summary.approvalsPending} pending approvals, not 2`);
          },
        );
      },
    );
    await context.step("runbook: list and reject the admin's pending proposals", async () => {
      await context.cells(['pending-proposals', 'reject-admin-proposals'], { yes: true });
      await context.expectAfter(
        'reject-admin-proposals',
        "the admin's proposal is not rejected",
        async () => {
          const states = [await proposalState(sql, attack.id), await proposalState(sql, legitimate)];
          if (states[0] !== 'rejected' || states[1] !== 'pending')
            throw new Error(`the admin's proposal is ${states[0]}, the colleague's is ${states[1]}`);
          const late = await api(tokens.bob, 'POST', `/v1/approvals/${attack.id}/approve`, {
            payloadHash: attack.payloadHash,
          });
          if (late.status !== 409 || late.body.type !== 'approvals/not-pending')
            throw new Error(
              `a second admin approving it afterwards answered ${late.status} ${late.body.type}`,
            );
        },
      );
    });

    const frozenPayout = await context.step(
      `a payout made during the freeze is held for ${frozenHoldMs} ms`,
      () =>
        context.expectAfter('freeze-payouts', 'a payout was submitted while payouts are frozen', async () => {
          const id = await pay(
            context,
            api,
            tokens.service,
            money.victim,
            money.destination,
            payoutFrozenXlm,
          );
          await sleep(frozenHoldMs);
          const held = await api(tokens.service, 'GET', `/v1/payouts/${id}`);
          const attempts = held.body.attempts as unknown[] | undefined;
          if (held.body.state !== 'accepted' || attempts?.length !== 0)
            throw new Error(
              `payout ${id} is ${held.body.state} with ${attempts?.length} settlement attempts`,
            );
          return id;
        }),
    );
    money.payouts.push(frozenPayout);

    await context.step("runbook: review the admin's actions in the audit log, which is intact", async () => {
      const [, , trail, reviews, , , payouts] = await context.cells([
        'verify-audit-log',
        'audit-chain-head',
        'admin-audit-trail',
        'admin-proposals-and-reviews',
        'admin-footprint',
        'show-routing',
        'recent-payouts',
      ]);
      if (!trail?.stdout.includes(attack.id) || !trail.stdout.includes('approval.proposed'))
        throw cellFailure(context, 'admin-audit-trail', `does not show approval.proposed of ${attack.id}`);
      if (!reviews?.stdout.includes(attack.id) || !reviews.stdout.includes('rejected'))
        throw cellFailure(context, 'admin-proposals-and-reviews', `does not show ${attack.id} rejected`);
      if (!payouts?.stdout.includes(frozenPayout))
        throw cellFailure(context, 'recent-payouts', `does not list the held payout ${frozenPayout}`);
      // The attacker still trying: the second search of the cell shows the refused calls.
      const refused = await api(tokens.mallory, 'GET', '/v1/approvals?limit=1');
      if (refused.status !== 401) throw context.fail(`the suspended admin's call answered ${refused.status}`);
      const [search] = await context.cells(['search-logs-admin']);
      if (!search?.stdout.includes(refused.requestId))
        throw cellFailure(
          context,
          'search-logs-admin',
          `does not show the refused request ${refused.requestId}`,
        );
    });

    await context.step('runbook: unfreezing is a proposal; only a second admin releases it', async () => {
      context.env.SETTLEDESK_OPERATOR = colleague;
      await context.cells(['propose-unfreeze'], { yes: true });
      const release = await context.expectAfter(
        'propose-unfreeze',
        'made no pending unfreeze proposal',
        async () => {
          const found = await sql<{ id: string; payloadHash: string }[]>`
          select id, payload_hash as "payloadHash" from proposals
          where action = 'controls.unfreeze_payouts' and state = 'pending'`;
          if (found.length !== 1 || found[0] === undefined)
            throw new Error(`${found.length} pending unfreeze proposals`);
          return found[0];
        },
      );
      if (!(await triageSummary(context, context.env)).controls.payoutsFrozen)
        throw context.fail('payouts were unfrozen by a proposal alone');
      const bySuspended = await api(tokens.mallory, 'POST', `/v1/approvals/${release.id}/approve`, {
        payloadHash: release.payloadHash,
      });
      const byProposer = await api(tokens.alice, 'POST', `/v1/approvals/${release.id}/approve`, {
        payloadHash: release.payloadHash,
      });
      if (bySuspended.status !== 401 || byProposer.status !== 403)
        throw context.fail(
          `approving the unfreeze answered ${bySuspended.status} for the suspended admin and ${byProposer.status} for its proposer`,
        );
      const approved = await api(tokens.bob, 'POST', `/v1/approvals/${release.id}/approve`, {
        payloadHash: release.payloadHash,
      });
      if (approved.status !== 200 || approved.body.state !== 'executed')
        throw context.fail(
          `the second admin's approval answered ${approved.status}, state ${approved.body.state}`,
        );
      if ((await triageSummary(context, context.env)).controls.payoutsFrozen)
        throw context.fail('payouts are still frozen after the second admin approved');
    });
    await context.step('the held payout settles after the unfreeze', () =>
      waitSettled(context, api, tokens.service, frozenPayout),
    );

    await context.step(
      'money: the proposal never executed, balances are intact, every payout paid once',
      async () => {
        const check = await context.cli(['--json', 'ledger', 'check'], context.env);
        if (check.code !== 0)
          throw context.fail(`settledesk ledger check exited ${check.code}: ${check.stderr}`);
        const proposal = await selectProposal(sql, attack.id);
        const [posted] = await sql<{ count: number }[]>`
        select count(*)::int as count from journal_transactions where reference = ${attack.id}::text`;
        if (proposal?.state !== 'rejected' || proposal.executedAt !== null || posted?.count !== 0)
          throw context.fail(
            `the admin's proposal is ${proposal?.state} with ${posted?.count} journal postings`,
          );
        const victim = await balanceMinor(api, tokens.service, money.victim);
        const mule = await balanceMinor(api, tokens.service, money.mule);
        const expected = xlmMinor(fundedXlm) - xlmMinor(payoutBeforeXlm) - xlmMinor(payoutFrozenXlm);
        if (victim !== expected || mule !== 0n)
          throw context.fail(
            `the customer holds ${victim} and the other account ${mule} stroops; expected ${expected} and 0`,
          );
        for (const id of money.payouts) {
          const payout = await api(tokens.service, 'GET', `/v1/payouts/${id}`);
          const attempts = (payout.body.attempts as { state: string }[] | undefined) ?? [];
          if (attempts.length !== 1 || attempts[0]?.state !== 'succeeded')
            throw context.fail(
              `payout ${id} has ${attempts.length} attempts (${attempts.map((a) => a.state).join(', ')})`,
            );
        }
        const received = (await nativeBalance(sandbox, money.destination)) - money.destinationBefore;
        if (received !== xlmMinor(payoutBeforeXlm) + xlmMinor(payoutFrozenXlm))
          throw context.fail(`the destination received ${received} stroops on chain`);
        context.note(
          `customer keeps ${victim} stroops, the other account 0; the destination received ${received} stroops in 2 payouts`,
        );
      },
    );
  },
};

function cellFailure(context: DrillContext, cell: string, detail: string): DrillFailure {
  return new DrillFailure(context.runbookPath, cell, detail);
}

type Api = (token: string, method: string, path: string, body?: unknown) => Promise<Answer>;

async function pay(
  context: DrillContext,
  api: Api,
  token: string,
  source: string,
  destination: string,
  amount: string,
): Promise<string> {
  const accepted = await api(token, 'POST', '/v1/payouts', {
    sourceAccountId: source,
    destination,
    asset: 'XLM',
    amount,
  });
  if (accepted.status !== 201 || accepted.body.state !== 'accepted')
    throw context.fail(
      `POST /v1/payouts answered ${accepted.status} (${accepted.body.type ?? accepted.body.state})`,
    );
  return String(accepted.body.id);
}

async function waitSettled(context: DrillContext, api: Api, token: string, id: string): Promise<void> {
  await context.waitFor(
    `payout ${id} to settle`,
    async () => ((await api(token, 'GET', `/v1/payouts/${id}`)).body.state === 'settled' ? true : undefined),
    settleMsMax,
  );
}

async function balanceMinor(api: Api, token: string, account: string): Promise<bigint> {
  return xlmMinor(String((await api(token, 'GET', `/v1/accounts/${account}`)).body.balance));
}

async function feesAccount(sql: Sql): Promise<string> {
  const [row] = await sql<{ id: string }[]>`select id from accounts where type = 'fees' and asset = 'XLM'`;
  if (row === undefined) throw new Error('no XLM fees account');
  return row.id;
}

async function proposalState(sql: Sql, id: string): Promise<string | undefined> {
  return (await selectProposal(sql, id))?.state;
}

async function friendbotAccount(context: DrillContext, sandbox: SandboxAddress): Promise<string> {
  const account = Keypair.random().publicKey();
  const response = await fetch(`${sandbox.friendbotUrl}?addr=${account}`, {
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  await response.body?.cancel();
  if (response.status !== 200) throw context.fail(`friendbot answered ${response.status}`);
  return account;
}

async function nativeBalance(sandbox: SandboxAddress, account: string): Promise<bigint> {
  const response = await fetch(`${sandbox.horizonUrls[0]}/accounts/${account}`, {
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  const body = (await response.json()) as { balances: { asset_type: string; balance: string }[] };
  const native = body.balances.find((balance) => balance.asset_type === 'native');
  if (native === undefined) throw new Error(`${account} has no native balance`);
  return xlmMinor(native.balance);
}
