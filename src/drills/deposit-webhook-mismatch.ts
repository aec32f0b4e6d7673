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
 * signed deposit for a reference it was quoted (credited once, its resend a replay), the same
 * reference with another payload (409, nothing credited), forged webhooks (401, security events,
 * one past the alert's threshold), a deposit naming another account than its intent's (held in
 * deposit_suspense, credited to nobody), a deposit to an account closed since its intent (422,
 * dead-lettered) and, while payments are `read_only`, two webhooks of issued references (credited:
 * they complete deposits customers were told to make) and one of a reference never issued
 * (answered 503 with `Retry-After`, not kept). Detection is the metrics the alerts are built on and
 * triage's count of dead letters; the runbook's cells investigate, the mode goes back to
 * `standard` under the two-person rule, the account is reopened and the provider's resend credited,
 * the unissued reference's retry is held, and then: one credit per accepted deposit, the
 * mismatched and misdirected payloads never credited, the ledger balanced.
 */
export const depositWebhookMismatchDrill: Drill = {
  name: 'deposit-webhook-mismatch',
  runbook: 'deposit-webhook-failures.md',
  description:
    'a provider sends a deposit, a mismatched payload under its reference, forged signatures, a ' +
    'deposit naming another account than its intent (held in suspense), a deposit to a closed ' +
    'account (dead-lettered) and, while payments are read_only, webhooks of issued references ' +
    '(credited) and of an unissued one (503, held on the retry); the runbook investigates: one ' +
    'credit per deposit, the mismatch never credited, the ledger balanced',
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
    const { deposits, misdirected } = await context.step(
      `open three customer accounts and quote each a ${provider} reference`,
      async () => {
        const [alice, bob, carol] = [
          await openAccount(context, service, tokens.service, 'drill-alice'),
          await openAccount(context, service, tokens.service, 'drill-bob'),
          await openAccount(context, service, tokens.service, 'drill-carol'),
        ];
        const reference = (account: string) => quoteReference(context, service, tokens.service, account);
        return {
          deposits: {
            first: { reference: await reference(alice), accountId: alice, asset: 'XLM', amount: '12.5' },
            deferredBob: { reference: await reference(bob), accountId: bob, asset: 'XLM', amount: '7.25' },
            deferredAlice: { reference: await reference(alice), accountId: alice, asset: 'XLM', amount: '3' },
            corrected: { reference: await reference(carol), accountId: carol, asset: 'XLM', amount: '4.5' },
            afterwards: { reference: await reference(bob), accountId: bob, asset: 'XLM', amount: '1.75' },
          },
          // Someone holding the secret names an account of their choosing under bob's reference.
          misdirected: {
            reference: await reference(bob),
            accountId: randomUUID(),
            asset: 'XLM',
            amount: '6',
          },
        };
      },
    );
    const mismatched = { ...deposits.first, amount: '125' };
    const unissued = { ...deposits.deferredBob, reference: `${provider}-${randomUUID()}`, amount: '2' };

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
    const heldDeposit = await context.step(
      "a deposit naming another account than its intent's is held in deposit_suspense, credited to nobody",
      async () => {
        const answer = await sendSigned(service, body(misdirected));
        if (
          answer.status !== 200 ||
          answer.body.outcome !== 'held' ||
          typeof answer.body.depositId !== 'string'
        )
          throw context.fail(`answered ${answer.status} ${JSON.stringify(answer.body)}, not 200 held`);
        return answer.body.depositId;
      },
    );
    await context.step(
      `fault: the account of a quoted reference is closed (${deposits.corrected.accountId})`,
      () => sql`update accounts set status = 'closed' where id = ${deposits.corrected.accountId}::uuid`,
    );
    const deadLetter = await context.step(
      'a deposit to the closed account is refused (422) and dead-lettered',
      async () => {
        const answer = await expectProblem(
          context,
          service,
          body(deposits.corrected),
          422,
          'ledger/account-closed',
        );
        if (typeof answer.webhookId !== 'string') throw context.fail('the refusal names no dead letter');
        return answer.webhookId;
      },
    );
    const issuedInReadOnly = [deposits.deferredBob, deposits.deferredAlice];
    await context.step(
      'fault: payments go read_only; webhooks of issued references are credited, one of a reference never issued is answered 503 with Retry-After and not kept',
      async () => {
        await cliOk(context, serviceEnv, [
          'mode',
          'read-only',
          '--reason',
          'drill: incident',
          '--as',
          operator,
        ]);
        for (const payload of issuedInReadOnly) {
          await expectWebhook(context, service, body(payload), 201, 'credited');
        }
        await expectProblem(context, service, body(unissued), 503, 'payments/read-only');
        const [kept] = await sql<{ count: number }[]>`
          select count(*)::int as count from inbound_webhooks
          where body::jsonb ->> 'reference' = ${unissued.reference}::text`;
        if (kept?.count !== 0) throw context.fail(`${kept?.count} deferred webhooks were stored`);
      },
    );

    await context.step('detection: the metrics the alerts are built on cross their thresholds', () =>
      checkMetrics(context, service, {
        forged,
        deadLetters: 1,
        deferred: 1,
        held: 1,
        credited: 1 + issuedInReadOnly.length,
      }),
    );
    await context.step('detection: triage counts the dead letter', () =>
      checkTriageDeadLetters(context, serviceEnv, service, tokens.operator, 1),
    );
    await context.step('runbook: find which failures these are', () =>
      investigate(context, {
        deadLetter,
        deferred: 1,
        forged,
        mismatchDeposit: mismatch.depositId,
        heldDeposit,
      }),
    );
    await context.step('runbook: what was credited and stored under the mismatched reference', () =>
      referenceHistory(context, String(mismatch.depositId), deposits.first, mismatched),
    );
    await context.step('fix the cause: back to standard mode, approved by a second admin', () =>
      restoreStandardMode(context, serviceEnv, service, tokens.operator),
    );
    await context.step("the unissued reference's retry after Retry-After is held, not credited", async () => {
      const answer = await sendSigned(service, body(unissued));
      if (answer.status !== 200 || answer.body.outcome !== 'held')
        throw context.fail(`answered ${answer.status} ${JSON.stringify(answer.body)}, not 200 held`);
    });
    await context.step(
      'the account is reopened and the provider resends the refused deposit: credited',
      async () => {
        await sql`update accounts set status = 'active' where id = ${deposits.corrected.accountId}::uuid`;
        await expectWebhook(context, service, body(deposits.corrected), 201, 'credited');
        const [result] = await context.cells(['dlq-list']);
        await context.expectAfter('dlq-list', 'the refused webhook is no longer on record', async () =>
          expectOutput(result, new RegExp(`${deadLetter} {2}rampco .*ledger/account-closed`)),
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
    const money = await context.step(
      'money: one credit per accepted deposit, the mismatched and misdirected payloads never',
      () => checkMoney(context, sql, Object.values(deposits), mismatched, [misdirected, unissued]),
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
      'creditedInReadOnly',
      issuedInReadOnly.length,
      `${issuedInReadOnly.length} webhooks of issued references credited while payments were read_only`,
    );
    context.figure(
      'deferredRetried',
      1,
      'one webhook of an unissued reference answered 503, held on the retry',
    );
    context.figure('held', money.held, `${money.held} deposits held in deposit_suspense, credited to nobody`);
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

async function sendSigned(service: ServiceProcess, text: string): Promise<Answer> {
  return sendWebhook(service, text, signatureHeaderValue(secret, nowSeconds(), text));
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
  sent: { forged: number; deadLetters: number; deferred: number; held: number; credited: number },
): Promise<void> {
  const text = await scrapeMetrics(service);
  const outcome = (name: string) => metricValue(text, 'deposit_webhooks_total', { provider, outcome: name });
  const seen = {
    credited: outcome('credited'),
    replay: outcome('replay'),
    held: outcome('held'),
    mismatch: outcome('mismatch'),
    rejected: outcome('rejected'),
    deadLetter: outcome('dead_letter'),
    unavailable: outcome('unavailable'),
    signatureFailures: metricValue(text, 'webhook_signature_failures_total', { provider }),
    deadLettersGauge: metricValue(text, 'deposit_webhook_dead_letters'),
  };
  context.note(`GET /metrics: ${JSON.stringify(seen)}`);
  const expected = {
    credited: sent.credited,
    replay: 1,
    held: sent.held,
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
  seen: {
    deadLetter: string;
    deferred: number;
    forged: number;
    mismatchDeposit: unknown;
    heldDeposit: string;
  },
): Promise<void> {
  const cells = [
    'search-logs-webhooks',
    'dlq-list',
    'dlq-by-error',
    'suspense-list',
    'signature-failures',
    'modes',
  ];
  const results = new Map((await context.cells(cells)).map((result) => [result.name, result]));
  const output = (name: string): CellResult => {
    const result = results.get(name);
    if (result === undefined) throw new Error(`cell ${name} did not run`);
    return result;
  };
  await context.expectAfter('search-logs-webhooks', 'the log search misses what happened', async () => {
    const logs = output('search-logs-webhooks');
    expectOutput(logs, new RegExp(`webhook/reference-mismatch.*${seen.mismatchDeposit}`));
    expectOutput(logs, new RegExp(`ledger/account-closed.*${seen.deadLetter}`));
    expectOutput(logs, new RegExp(`deposit webhook held in suspense.*${seen.heldDeposit}`));
    const deferred = logs.stdout.match(/deposit webhook deferred[^\n]*payments\/read-only/g) ?? [];
    if (deferred.length !== seen.deferred)
      throw new Error(`the log shows ${deferred.length} deferred webhooks; ${seen.deferred} were sent`);
  });
  await context.expectAfter('dlq-list', 'the queue listing misses the dead letter', async () =>
    expectOutput(
      output('dlq-list'),
      new RegExp(`^${seen.deadLetter} {2}rampco .*ledger/account-closed`, 'm'),
    ),
  );
  await context.expectAfter('dlq-by-error', 'the grouping misses the dead letter', async () =>
    expectOutput(
      output('dlq-by-error'),
      /rampco\s*\|\s*ledger\/account-closed: account [^|]* is closed\s*\|\s*1\s*\|/,
    ),
  );
  await context.expectAfter('suspense-list', 'the suspense listing misses the held deposit', async () =>
    expectOutput(output('suspense-list'), new RegExp(`${seen.heldDeposit}.*account_differs`)),
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
  held: readonly Payload[],
): Promise<MoneyFigures> {
  const credits = await sql<{ reference: string; accountId: string; amountMinor: bigint; count: number }[]>`
    select d.reference, d.account_id as "accountId", d.amount_minor as "amountMinor",
           (select count(*)::int from journal_transactions j
            where j.kind = 'deposit' and j.reference = ${provider}::text || ':' || d.reference) as count
    from deposits d where d.provider = ${provider}::text and d.suspense_reason is null`;
  const holds = await sql<{ reference: string; amountMinor: bigint }[]>`
    select d.reference, d.amount_minor as "amountMinor" from deposits d join accounts a on a.id = d.account_id
    where d.provider = ${provider}::text and d.suspense_reason is not null and a.type = 'deposit_suspense'`;
  const heldMinor = held.reduce((sum, payload) => sum + xlmMinor(payload.amount), 0n);
  if (
    holds.length !== held.length ||
    holds.reduce((sum, row) => sum + row.amountMinor, 0n) !== heldMinor ||
    !held.every((payload) => holds.some((row) => row.reference === payload.reference))
  )
    throw new Error(`held in suspense: ${JSON.stringify(holds, jsonBigint)}`);
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
    // The provider owes us the held money too: it is in deposit_suspense, not in any customer's.
    const want = row.type === 'deposit_clearing' ? -(total + heldMinor) : expected.get(row.id);
    if (row.balanceMinor !== want || row.entriesMinor !== want)
      throw new Error(
        `account ${row.id} (${row.type}) holds ${row.balanceMinor} (entries ${row.entriesMinor}), not ${want}`,
      );
  }
  context.note(
    `${accepted.length} deposits credited once each, ${total} minor units in all, ${held.length} held ` +
      `(${heldMinor}), matched by deposit_clearing; no credit of the mismatched or misdirected payloads`,
  );
  return {
    held: holds.length,
    depositsCredited: credits.length,
    creditsPerDepositMax: Math.max(...credits.map((row) => row.count)),
    mismatchesCredited,
  };
}

type MoneyFigures = {
  held: number;
  depositsCredited: number;
  creditsPerDepositMax: number;
  mismatchesCredited: number;
};

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
