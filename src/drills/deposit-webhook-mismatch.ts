import { randomUUID } from 'node:crypto';
import { signatureHeader, signatureHeaderValue } from '../deposits/signature.ts';
import type { Summary } from '../ops/triage.ts';
import type { Sql } from '../platform/db/types.ts';
import type { CellResult } from '../runbooks/cells.ts';
import type { Drill, DrillContext, ServiceProcess } from './harness.ts';
import { startSandboxService } from './sandbox-service.ts';
import {
  alertThreshold,
  api,
  checkLedgerBalanced,
  cliOk,
  metricValue,
  openAccount,
  scrapeMetrics,
  triageSummary,
  xlmMinor,
} from './support.ts';

const provider = 'rampco';
const secret = 'rampco-drill-secret-0001';
const forgerySecret = 'someone-elses-secret-0001';
const operator = 'drill-operator';
const secondAdmin = 'drill-second-admin';
const requestTimeoutMs = 10_000;

/**
 * docs/runbooks/deposit-webhook-failures.md against `settledesk serve`: provider rampco sends a
 * signed deposit (credited once, its resend a replay), the same reference with another payload
 * (409, nothing credited), forged webhooks (401, security events, one past the alert's threshold),
 * a deposit naming an account we do not have (404, dead-lettered), and, while payments are
 * `read_only`, two verified webhooks answered 503 with `Retry-After` and not kept. Detection is
 * the metrics the alerts are built on and triage's count of dead letters; the runbook's cells
 * investigate, the mode goes back to `standard` under the two-person rule, the provider's retries
 * and its corrected resend are credited, and then: one credit per accepted deposit, the
 * mismatched payload never credited, balances equal to the accepted deposits, the ledger balanced.
 */
export const depositWebhookMismatchDrill: Drill = {
  name: 'deposit-webhook-mismatch',
  runbook: 'deposit-webhook-failures.md',
  description:
    'a provider sends a deposit, a mismatched payload under its reference, forged signatures, a ' +
    'deposit to an unknown account (dead-lettered) and, while payments are read_only, webhooks ' +
    'answered 503 that it retries; the runbook investigates: one credit per deposit, the mismatch ' +
    'never credited, the ledger balanced',
  run: async (context) => {
    const {
      service,
      env: serviceEnv,
      tokens,
      sql,
    } = await startSandboxService(
      context,
      { [`DEPOSIT_WEBHOOK_SECRET_${provider.toUpperCase()}`]: secret },
      { operator },
    );
    await context.step(`register provider ${provider}`, () =>
      cliOk(context, serviceEnv, ['providers', 'add', provider, '--as', operator]),
    );
    const deposits = await context.step(
      `open two customer accounts and quote each a ${provider} reference`,
      async () => {
        const [alice, bob] = [
          await openAccount(context, service, tokens.service, 'drill-alice'),
          await openAccount(context, service, tokens.service, 'drill-bob'),
        ];
        const reference = (account: string) => quoteReference(context, service, tokens.service, account);
        return {
          first: { reference: await reference(alice), accountId: alice, asset: 'XLM', amount: '12.5' },
          deferredBob: { reference: await reference(bob), accountId: bob, asset: 'XLM', amount: '7.25' },
          deferredAlice: { reference: await reference(alice), accountId: alice, asset: 'XLM', amount: '3' },
          corrected: { reference: await reference(bob), accountId: bob, asset: 'XLM', amount: '4.5' },
          afterwards: { reference: await reference(bob), accountId: bob, asset: 'XLM', amount: '1.75' },
        };
      },
    );
    const mismatched = { ...deposits.first, amount: '125' };
    // The provider's mistake: an account id we never issued, under a reference it was quoted.
    const wrongAccount = { ...deposits.corrected, accountId: randomUUID() };

    await context.step('a signed deposit is credited once; its resend is a replay', async () => {
      await expectWebhook(context, service, body(deposits.first), 201, 'credited');
      await expectWebhook(context, service, body(deposits.first), 200, 'replay');
    });
    const mismatch = await context.step('another payload under the same reference is refused (409)', () =>
      expectProblem(context, service, body(mismatched), 409, 'webhook/reference-mismatch'),
    );
    const spikeThreshold = alertThreshold(
      'WebhookSignatureFailuresSpike',
      'webhook_signature_failures_total',
    );
    const forged = await context.step(
      `forged webhooks: ${spikeThreshold + 1} bad signatures, one past the alert's threshold, are refused (401)`,
      () => sendForgeries(context, service, body(deposits.deferredBob), spikeThreshold + 1),
    );
    const deadLetter = await context.step(
      'a deposit naming an account we do not have is refused (404) and dead-lettered',
      async () => {
        const answer = await expectProblem(
          context,
          service,
          body(wrongAccount),
          404,
          'ledger/account-not-found',
        );
        if (typeof answer.webhookId !== 'string') throw context.fail('the refusal names no dead letter');
        return answer.webhookId;
      },
    );
    const deferred = [deposits.deferredBob, deposits.deferredAlice];
    await context.step(
      'fault: payments go read_only; two verified webhooks are answered 503 with Retry-After and not kept',
      async () => {
        await cliOk(context, serviceEnv, [
          'mode',
          'read-only',
          '--reason',
          'drill: incident',
          '--as',
          operator,
        ]);
        for (const payload of deferred) {
          await expectProblem(context, service, body(payload), 503, 'payments/read-only');
        }
        const [kept] = await sql<{ count: number }[]>`
          select count(*)::int as count from inbound_webhooks
          where body::jsonb ->> 'reference' = any(${deferred.map((payload) => payload.reference)}::text[])`;
        if (kept?.count !== 0) throw context.fail(`${kept?.count} deferred webhooks were stored`);
      },
    );

    await context.step('detection: the metrics the alerts are built on cross their thresholds', () =>
      checkMetrics(context, service, { forged, deadLetters: 1, deferred: deferred.length }),
    );
    await context.step('detection: triage counts the dead letter', () =>
      checkTriageDeadLetters(context, serviceEnv, service, tokens.operator, 1),
    );
    await context.step('runbook: find which failures these are', () =>
      investigate(context, {
        deadLetter,
        deferred: deferred.length,
        forged,
        mismatchDeposit: mismatch.depositId,
      }),
    );
    await context.step('runbook: what was credited and stored under the mismatched reference', () =>
      referenceHistory(context, String(mismatch.depositId), deposits.first, mismatched),
    );
    await context.step('fix the cause: back to standard mode, approved by a second admin', () =>
      restoreStandardMode(context, serviceEnv, service, tokens.operator),
    );
    await context.step("the provider's retries after Retry-After are credited once each", async () => {
      for (const payload of deferred) await expectWebhook(context, service, body(payload), 201, 'credited');
    });
    await context.step(
      'the provider resends the refused deposit with the right account under the same reference: credited',
      async () => {
        await expectWebhook(context, service, body(deposits.corrected), 201, 'credited');
        const [result] = await context.cells(['dlq-list']);
        await context.expectAfter('dlq-list', 'the refused webhook is no longer on record', async () =>
          expectOutput(result, new RegExp(`${deadLetter} {2}rampco .*ledger/account-not-found`)),
        );
      },
    );
    await context.step(
      "afterwards: the provider's own retry is a harmless replay, and new deposits are credited again",
      async () => {
        await expectWebhook(context, service, body(deposits.deferredBob), 200, 'replay');
        await expectWebhook(context, service, body(deposits.afterwards), 201, 'credited');
        const credited = metricValue(await scrapeMetrics(service), 'deposit_webhooks_total', {
          provider,
          outcome: 'credited',
        });
        const expected = Object.keys(deposits).length;
        if (credited !== expected)
          throw context.fail(`deposit_webhooks_total{outcome="credited"} is ${credited}, not ${expected}`);
      },
    );
    const money = await context.step('money: one credit per accepted deposit, the mismatch never', () =>
      checkMoney(context, sql, Object.values(deposits), mismatched),
    );
    await context.step('the ledger sums to zero (settledesk ledger check, triage ledger)', () =>
      checkLedgerBalanced(context, { triage: true }),
    );
    context.figure(
      'signatureFailures',
      forged,
      `${forged} forged webhooks refused and counted as security events`,
    );
    context.figure('deadLetters', 1, 'one refused webhook dead-lettered and kept as the record');
    context.figure(
      'deferredRetried',
      deferred.length,
      `${deferred.length} webhooks answered 503 in read_only, credited once each by the provider's retry`,
    );
    context.figure(
      'creditsPerDepositMax',
      money.creditsPerDepositMax,
      `${money.depositsCredited} deposits credited, at most ${money.creditsPerDepositMax} credit each`,
    );
    context.figure(
      'mismatchesCredited',
      money.mismatchesCredited,
      `the mismatched payload was credited ${money.mismatchesCredited} times`,
    );
  },
};

type Payload = { reference: string; accountId: string; asset: string; amount: string };

function body(payload: Payload): string {
  return JSON.stringify(payload);
}

type Answer = { status: number; body: Record<string, unknown>; retryAfter: string | null };

async function sendWebhook(service: ServiceProcess, text: string, signature?: string): Promise<Answer> {
  const response = await fetch(`${service.url}/v1/webhooks/deposits/${provider}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(signature === undefined ? {} : { [signatureHeader]: signature }),
    },
    body: text,
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    retryAfter: response.headers.get('retry-after'),
  };
}

/** Sends a signed webhook and expects its answer; returns the stored webhook's id. */
async function expectWebhook(
  context: DrillContext,
  service: ServiceProcess,
  text: string,
  status: number,
  outcome: string,
): Promise<string> {
  const answer = await sendWebhook(service, text, signatureHeaderValue(secret, nowSeconds(), text));
  if (answer.status !== status || answer.body.outcome !== outcome)
    throw context.fail(
      `${text} answered ${answer.status} ${JSON.stringify(answer.body)}, not ${status} ${outcome}`,
    );
  return String(answer.body.webhookId);
}

/** Sends a signed webhook and expects a problem+json refusal of this status and type; returns it. */
async function expectProblem(
  context: DrillContext,
  service: ServiceProcess,
  text: string,
  status: number,
  type: string,
): Promise<Record<string, unknown>> {
  const answer = await sendWebhook(service, text, signatureHeaderValue(secret, nowSeconds(), text));
  if (answer.status !== status || answer.body.type !== type)
    throw context.fail(
      `${text} answered ${answer.status} ${JSON.stringify(answer.body)}, not ${status} ${type}`,
    );
  if (status === 503 && !/^[1-9][0-9]*$/.test(answer.retryAfter ?? ''))
    throw context.fail(`a 503 came with Retry-After ${answer.retryAfter}`);
  return answer.body;
}

/**
 * Forgeries of three kinds, as a prober or a half-done rotation sends them: no signature, a
 * malformed header, and (the rest) signed with another secret. All must be refused with 401.
 */
async function sendForgeries(
  context: DrillContext,
  service: ServiceProcess,
  text: string,
  count: number,
): Promise<number> {
  for (let index = 0; index < count; index += 1) {
    const signature =
      index === 0
        ? undefined
        : index === 1
          ? 't=not-a-time,v1=zz'
          : signatureHeaderValue(forgerySecret, nowSeconds(), text);
    const answer = await sendWebhook(service, text, signature);
    if (answer.status !== 401 || answer.body.type !== 'webhook/bad-signature')
      throw context.fail(`forgery ${index + 1} answered ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return count;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1_000);
}

async function checkMetrics(
  context: DrillContext,
  service: ServiceProcess,
  sent: { forged: number; deadLetters: number; deferred: number },
): Promise<void> {
  const text = await scrapeMetrics(service);
  const outcome = (name: string) => metricValue(text, 'deposit_webhooks_total', { provider, outcome: name });
  const seen = {
    credited: outcome('credited'),
    replay: outcome('replay'),
    mismatch: outcome('mismatch'),
    rejected: outcome('rejected'),
    deadLetter: outcome('dead_letter'),
    unavailable: outcome('unavailable'),
    signatureFailures: metricValue(text, 'webhook_signature_failures_total', { provider }),
    deadLettersGauge: metricValue(text, 'deposit_webhook_dead_letters'),
  };
  context.note(`GET /metrics: ${JSON.stringify(seen)}`);
  const expected = {
    credited: 1,
    replay: 1,
    mismatch: 1,
    rejected: sent.forged,
    deadLetter: sent.deadLetters,
    unavailable: sent.deferred,
    signatureFailures: sent.forged,
    deadLettersGauge: sent.deadLetters,
  };
  const wrong = Object.entries(expected).filter(([key, value]) => seen[key as keyof typeof seen] !== value);
  if (wrong.length > 0)
    throw context.fail(
      `metrics differ from what was sent: ${wrong.map(([key, value]) => `${key} is ${seen[key as keyof typeof seen]}, not ${value}`).join('; ')}`,
    );
  // Both alerts count within their window; every one of these happened seconds ago, in a
  // process younger than the window, so the counters' values are the windows' increases.
  const deadLetterThreshold = alertThreshold('DepositWebhookDeadLettersGrowing', 'deposit_webhooks_total');
  const spikeThreshold = alertThreshold('WebhookSignatureFailuresSpike', 'webhook_signature_failures_total');
  if (!(seen.deadLetter > deadLetterThreshold && seen.signatureFailures > spikeThreshold))
    throw context.fail('the alert conditions do not hold');
  context.note(
    `DepositWebhookDeadLettersGrowing: ${seen.deadLetter} > ${deadLetterThreshold}; ` +
      `WebhookSignatureFailuresSpike: ${seen.signatureFailures} > ${spikeThreshold} in 5 minutes`,
  );
}

async function checkTriageDeadLetters(
  context: DrillContext,
  env: Record<string, string>,
  service: ServiceProcess,
  token: string,
  count: number,
): Promise<void> {
  const summary = await triageSummary(context, env);
  if (summary.deposits.webhookDeadLetters !== count)
    throw context.fail(
      `settledesk triage summary counts ${summary.deposits.webhookDeadLetters} dead letters, not ${count}`,
    );
  if (!summary.attention.some((line) => line.includes('dead-letter queue')))
    throw context.fail(
      `triage summary does not call for attention to the queue: ${summary.attention.join('; ')}`,
    );
  const response = await fetch(`${service.url}/internal/incident/summary`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  const api = (await response.json()) as Summary;
  if (response.status !== 200 || api.deposits.webhookDeadLetters !== count)
    throw context.fail(
      `GET /internal/incident/summary answered ${response.status} with ${api.deposits?.webhookDeadLetters} dead letters`,
    );
  context.note(`triage: ${count} dead letters; attention: ${summary.attention.join('; ')}`);
}

/** The runbook's Indicators and its first mitigation step: which of the four failures is it. */
async function investigate(
  context: DrillContext,
  seen: { deadLetter: string; deferred: number; forged: number; mismatchDeposit: unknown },
): Promise<void> {
  const cells = ['search-logs-webhooks', 'dlq-list', 'dlq-by-error', 'signature-failures', 'modes'];
  const results = new Map((await context.cells(cells)).map((result) => [result.name, result]));
  const output = (name: string): CellResult => {
    const result = results.get(name);
    if (result === undefined) throw new Error(`cell ${name} did not run`);
    return result;
  };
  await context.expectAfter('search-logs-webhooks', 'the log search misses what happened', async () => {
    const logs = output('search-logs-webhooks');
    expectOutput(logs, new RegExp(`webhook/reference-mismatch.*${seen.mismatchDeposit}`));
    expectOutput(logs, new RegExp(`ledger/account-not-found.*${seen.deadLetter}`));
    const deferred = logs.stdout.match(/deposit webhook deferred[^\n]*payments\/read-only/g) ?? [];
    if (deferred.length !== seen.deferred)
      throw new Error(`the log shows ${deferred.length} deferred webhooks; ${seen.deferred} were sent`);
  });
  await context.expectAfter('dlq-list', 'the queue listing misses the dead letter', async () =>
    expectOutput(
      output('dlq-list'),
      new RegExp(`^${seen.deadLetter} {2}rampco .*ledger/account-not-found`, 'm'),
    ),
  );
  await context.expectAfter('dlq-by-error', 'the grouping misses the dead letter', async () =>
    expectOutput(
      output('dlq-by-error'),
      /rampco\s*\|\s*ledger\/account-not-found: no account [^|]*\|\s*1\s*\|/,
    ),
  );
  await context.expectAfter('signature-failures', 'the security events are not all there', async () => {
    const rows = [
      ...output('signature-failures').stdout.matchAll(
        /provider:rampco\s*\|\s*webhook\.bad_signature\s*\|\s*(\w+)\s*\|\s*(\d+)/g,
      ),
    ];
    const total = rows.reduce((sum, row) => sum + Number(row[2]), 0);
    if (total !== seen.forged) throw new Error(`the cell counts ${total} refusals; ${seen.forged} were sent`);
  });
  await context.expectAfter('modes', 'the cell does not show the read_only mode', async () =>
    expectOutput(output('modes'), /payments mode:\s+read_only/),
  );
}

async function referenceHistory(
  context: DrillContext,
  depositId: string,
  credited: Payload,
  refused: Payload,
): Promise<void> {
  context.env.DEPOSIT_ID = depositId;
  const [result] = await context.cells(['reference-history']);
  await context.expectAfter('reference-history', 'the history of the reference is incomplete', async () => {
    const text = result?.stdout ?? '';
    if (!/\(1 row\)/.test(text)) throw new Error('not exactly one deposit under the reference');
    if (!text.includes(` ${xlmMinor(credited.amount)} `)) throw new Error('the credited amount is not shown');
    if (!/\(2 rows\)/.test(text)) throw new Error('the credited webhook and its resend are not both shown');
    if (text.includes(body(refused))) throw new Error('the refused payload was stored');
  });
}

/** Resolution step 1: `settledesk mode standard` is a proposal that a second admin approves. */
async function restoreStandardMode(
  context: DrillContext,
  env: Record<string, string>,
  service: ServiceProcess,
  token: string,
): Promise<void> {
  const proposal = JSON.parse(
    await cliOk(context, env, [
      '--json',
      'mode',
      'standard',
      '--reason',
      'drill: cause fixed',
      '--as',
      operator,
    ]),
  ) as { id: string; payloadHash: string };
  await cliOk(context, env, [
    'approvals',
    'approve',
    proposal.id,
    '--hash',
    proposal.payloadHash,
    '--as',
    secondAdmin,
  ]);
  const controls = await api(service, token, 'GET', '/internal/modes');
  if (controls.body.paymentsMode !== 'standard')
    throw context.fail(`payments mode is ${controls.body.paymentsMode} after the approval`);
}

async function checkMoney(
  context: DrillContext,
  sql: Sql,
  accepted: readonly Payload[],
  mismatched: Payload,
): Promise<MoneyFigures> {
  const credits = await sql<{ reference: string; accountId: string; amountMinor: bigint; count: number }[]>`
    select d.reference, d.account_id as "accountId", d.amount_minor as "amountMinor",
           (select count(*)::int from journal_transactions j
            where j.kind = 'deposit' and j.reference = ${provider}::text || ':' || d.reference) as count
    from deposits d where d.provider = ${provider}::text`;
  if (credits.length !== accepted.length)
    throw new Error(`${credits.length} ${provider} deposits are recorded; ${accepted.length} were accepted`);
  const expected = new Map<string, bigint>();
  for (const payload of accepted) {
    const credit = credits.find((row) => row.reference === payload.reference);
    const amountMinor = xlmMinor(payload.amount);
    if (credit?.count !== 1 || credit.amountMinor !== amountMinor || credit.accountId !== payload.accountId)
      throw new Error(`deposit ${payload.reference}: ${JSON.stringify(credit ?? 'missing', jsonBigint)}`);
    expected.set(payload.accountId, (expected.get(payload.accountId) ?? 0n) + amountMinor);
  }
  const [mismatch] = await sql<{ count: number }[]>`
    select count(*)::int as count from entries e join journal_transactions j on j.id = e.journal_id
    where j.kind = 'deposit' and e.account_id = ${mismatched.accountId}::uuid
      and e.amount_minor = ${xlmMinor(mismatched.amount)}::int8`;
  const mismatchesCredited = mismatch?.count ?? 0;
  if (mismatchesCredited > 0) throw new Error('the mismatched payload was credited');
  const balances = await sql<{ id: string; type: string; balanceMinor: bigint; entriesMinor: bigint }[]>`
    select a.id, a.type, a.balance_minor as "balanceMinor", coalesce(sum(e.amount_minor), 0)::int8 as "entriesMinor"
    from accounts a left join entries e on e.account_id = a.id
    where a.id = any(${[...expected.keys()]}::uuid[]) or (a.type = 'deposit_clearing' and a.asset = 'XLM')
    group by a.id`;
  const total = [...expected.values()].reduce((sum, value) => sum + value, 0n);
  if (balances.length !== expected.size + 1)
    throw new Error(`found ${balances.length} of the ${expected.size + 1} accounts to check`);
  for (const row of balances) {
    const want = row.type === 'deposit_clearing' ? -total : expected.get(row.id);
    if (row.balanceMinor !== want || row.entriesMinor !== want)
      throw new Error(
        `account ${row.id} (${row.type}) holds ${row.balanceMinor} (entries ${row.entriesMinor}), not ${want}`,
      );
  }
  context.note(
    `${accepted.length} deposits credited once each, ${total} minor units in all, matched by deposit_clearing; ` +
      'no credit of the mismatched payload',
  );
  return {
    depositsCredited: credits.length,
    creditsPerDepositMax: Math.max(...credits.map((row) => row.count)),
    mismatchesCredited,
  };
}

type MoneyFigures = { depositsCredited: number; creditsPerDepositMax: number; mismatchesCredited: number };

function jsonBigint(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** The reference rampco quotes the customer: an intent at the provider, as a deposit starts. */
async function quoteReference(
  context: DrillContext,
  service: ServiceProcess,
  token: string,
  accountId: string,
): Promise<string> {
  const answer = await api(service, token, 'POST', '/v1/deposits/intents', { accountId, provider });
  if (answer.status !== 201 || typeof answer.body.reference !== 'string')
    throw context.fail(`POST /v1/deposits/intents answered ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body.reference;
}

function expectOutput(result: CellResult | undefined, pattern: RegExp): void {
  const text = `${result?.stdout ?? ''}${result?.stderr ?? ''}`;
  if (!pattern.test(text)) throw new Error(`its output does not match ${pattern}: ${text.slice(-800)}`);
}
