import { join } from 'node:path';
import { stroopsPerUnit } from '../stellar/units.ts';
import {
  approvingAdmin,
  escrowFundingMinor,
  expectBalances,
  expectSelfApprovalRefused,
  type HoldAnswer,
  holdMinor,
  openEscrowWorld,
  type ProposalAnswer,
  proposingAdmin,
  withCellEnv,
  xlm,
} from './escrow-support.ts';
import type { Drill, DrillContext } from './harness.ts';
import { testExpression } from './promtool.ts';
import type { SandboxService } from './sandbox-service.ts';
import {
  alertExpression,
  api,
  checkLedgerBalanced,
  idempotencyKey,
  metricValue,
  scrapeMetrics,
} from './support.ts';

/** The part of the hold the merchant platform tries to release while it is disputed. */
const attemptedMinor = 4n * stroopsPerUnit;
/** Scrapes fed to promtool are this far apart, as a Prometheus scrape interval. */
const scrapeIntervalSeconds = 15;
/** Samples of the counter after the attempt: past the alert's 10-minute window. */
const samplesAfter = 50;

type Problem = { type?: string };

/**
 * docs/runbooks/disputed-release-attempt.md against `settledesk serve`: a hold is disputed, then
 * the merchant platform tries to release part of it. The service refuses with
 * `escrow/hold-disputed`, moves nothing, and counts the attempt in
 * `escrow_disputed_attempts_total{action="release"}`; EscrowDisputedReleaseAttempt's expression,
 * evaluated by promtool on the counter scraped before and after, is true then and quiet 10 minutes
 * later. The runbook's cells find the hold and the attempt, one admin proposes the refund, the
 * proposer cannot approve it, a second admin does, and the hold closes with the payer paid back:
 * one resolution only, a second approval and a second proposal are refused.
 */
export const disputedReleaseDrill: Drill = {
  name: 'disputed-release',
  runbook: 'disputed-release-attempt.md',
  description:
    'a release attempted on a disputed hold is refused and alerts; two admins resolve the dispute ' +
    'with the runbook’s cells, once',
  run: async (context) => {
    const { drill, payer, payee, hold } = await openEscrowWorld(context);
    const held = { [payer]: escrowFundingMinor - holdMinor, [payee]: escrowFundingMinor, escrow: holdMinor };

    const before = await context.step('the payer disputes the hold', async () => {
      const text = await scrapeMetrics(drill.service);
      const counted = metricValue(text, 'escrow_disputed_attempts_total', { action: 'release' });
      if (counted !== 0) throw context.fail(`escrow_disputed_attempts_total{action="release"} is ${counted}`);
      const disputed = await api<HoldAnswer>(
        drill.service,
        drill.tokens.service,
        'POST',
        `/v1/escrow/holds/${hold.id}/disputes`,
        { reason: 'goods not delivered', evidenceRefs: ['drill-ticket-16'] },
        { 'idempotency-key': idempotencyKey(context) },
      );
      if (disputed.status !== 201 || disputed.body.state !== 'disputed')
        throw context.fail(`POST …/disputes answered ${disputed.status}: ${JSON.stringify(disputed.body)}`);
      return text;
    });

    const after = await context.step(
      'fault: a release of the disputed hold is refused; nothing moves',
      async () => {
        const refused = await api<Problem>(
          drill.service,
          drill.tokens.service,
          'POST',
          `/v1/escrow/holds/${hold.id}/releases`,
          { amount: xlm(attemptedMinor) },
          { 'idempotency-key': idempotencyKey(context) },
        );
        if (refused.status !== 409 || !String(refused.body.type).endsWith('escrow/hold-disputed'))
          throw context.fail(`the release answered ${refused.status} ${JSON.stringify(refused.body)}`);
        await expectBalances(context, drill, 'after the refused release', held);
        const text = await scrapeMetrics(drill.service);
        const counted = metricValue(text, 'escrow_disputed_attempts_total', { action: 'release' });
        if (counted !== 1)
          throw context.fail(`escrow_disputed_attempts_total{action="release"} is ${counted}, not 1`);
        return text;
      },
    );

    await context.step('detection: EscrowDisputedReleaseAttempt’s expression on the scrapes (promtool)', () =>
      expressionFires(context, before, after),
    );

    await context.step('runbook: the disputed hold and the refused attempt', async () => {
      const [holds, attempts] = await context.cells(['list-disputed-holds', 'find-disputed-attempts']);
      await context.expectAfter('list-disputed-holds', 'it does not list the hold', async () => {
        if (!holds?.stdout.includes(hold.id)) throw new Error(holds?.stdout ?? '');
      });
      await context.expectAfter(
        'find-disputed-attempts',
        'it does not show the refused release',
        async () => {
          for (const expected of [hold.id, 'release', xlm(attemptedMinor), 'drill-merchant-app'])
            if (!attempts?.stdout.includes(expected))
              throw new Error(`no ${expected} in ${attempts?.stdout}`);
        },
      );
      Object.assign(context.env, { HOLD_ID: hold.id });
      const [shown] = await context.cells(['show-hold']);
      await context.expectAfter('show-hold', 'it does not show the dispute', async () => {
        if (!shown?.stdout.includes('goods not delivered')) throw new Error(shown?.stdout ?? '');
      });
    });

    const proposal = await context.step('runbook: one admin proposes the refund; nothing moves', async () => {
      const env = {
        SETTLEDESK_OPERATOR: proposingAdmin,
        OUTCOME: 'refund',
        RESOLUTION_REASON: 'drill: goods not delivered, merchant agrees to refund',
      };
      const [proposed] = await withCellEnv(context, env, () =>
        context.cells(['propose-resolution'], { yes: true }),
      );
      const answer = await context.expectAfter(
        'propose-resolution',
        'it printed no proposal',
        async () => JSON.parse(proposed?.stdout ?? '') as ProposalAnswer,
      );
      if (answer.action !== 'escrow.resolve_dispute' || answer.state !== 'pending')
        throw context.fail(`the proposal is ${JSON.stringify(answer)}`);
      await expectBalances(context, drill, 'after the proposal alone', held);
      const [pending] = await context.cells(['list-pending-proposals']);
      if (!pending?.stdout.includes(answer.id))
        throw context.fail(`list-pending-proposals does not list ${answer.id}`);
      await expectSelfApprovalRefused(context, answer);
      return answer;
    });

    await context.step(
      'runbook: a second admin approves; the hold closes, the payer is paid back',
      async () => {
        const env = {
          SETTLEDESK_OPERATOR: approvingAdmin,
          PROPOSAL_ID: proposal.id,
          PAYLOAD_HASH: proposal.payloadHash,
        };
        await withCellEnv(context, env, () => context.cells(['approve-resolution'], { yes: true }));
        const [checked] = await context.cells(['check-resolved']);
        await context.expectAfter('check-resolved', 'the hold is not closed', async () => {
          if (!checked?.stdout.includes('closed')) throw new Error(checked?.stdout ?? '');
        });
        await expectBalances(context, drill, 'after the resolution', {
          [payer]: escrowFundingMinor,
          [payee]: escrowFundingMinor,
          escrow: 0n,
        });
      },
    );

    await context.step(
      'one resolution only: a second approval and a second proposal are refused',
      async () => {
        await oneResolutionOnly(context, drill, hold, proposal);
        await expectBalances(context, drill, 'after the refused repeats', {
          [payer]: escrowFundingMinor,
          [payee]: escrowFundingMinor,
          escrow: 0n,
        });
        await checkLedgerBalanced(context, { triage: true });
      },
    );
  },
};

/**
 * A promtool unit test of EscrowDisputedReleaseAttempt's expression from ops/prometheus/alerts.yml
 * on the counter as the service exported it: the scrape before the attempt (no series yet, or its
 * value), then the scrape after it, repeated. The expression must be quiet before, true for
 * `action="release"` one scrape after, and quiet again once the attempt left the 10-minute window.
 */
async function expressionFires(context: DrillContext, before: string, after: string): Promise<void> {
  const labels = { action: 'release' };
  const exported = /^escrow_disputed_attempts_total\{[^}]*action="release"/m.test(before);
  const first = exported ? String(metricValue(before, 'escrow_disputed_attempts_total', labels)) : '_';
  const counted = String(metricValue(after, 'escrow_disputed_attempts_total', labels));
  const selector = `escrow_disputed_attempts_total{action="release",instance="settledesk",job="settledesk"}`;
  const expr = `count by (action) (${alertExpression('EscrowDisputedReleaseAttempt')})`;
  const quietAgainAt = (samplesAfter - 1) * scrapeIntervalSeconds;
  const file = join(context.dir, 'escrow-disputed-release-attempt.test.yml');
  const result = await testExpression({
    file,
    intervalSeconds: scrapeIntervalSeconds,
    series: [{ selector, values: [first, ...Array.from({ length: samplesAfter }, () => counted)].join(' ') }],
    expr,
    checks: [
      { atSeconds: 0, firing: [] },
      { atSeconds: scrapeIntervalSeconds, firing: ['{action="release"}'] },
      { atSeconds: quietAgainAt, firing: [] },
    ],
  });
  if (result.code !== 0) throw context.fail(`promtool test rules ${file}: ${result.output}`);
  context.figure(
    'attemptsCounted',
    Number(counted),
    `EscrowDisputedReleaseAttempt's expression: quiet before, true for action="release" after ${counted} refused release, quiet at ${quietAgainAt} s`,
  );
}

async function oneResolutionOnly(
  context: DrillContext,
  drill: SandboxService,
  hold: HoldAnswer,
  proposal: ProposalAnswer,
): Promise<void> {
  const again = await context.cli(
    ['approvals', 'approve', proposal.id, '--hash', proposal.payloadHash, '--as', 'admin-carol'],
    context.env,
  );
  if (again.code === 0) throw context.fail('a third admin executed the resolution a second time');
  const second = await context.cli(
    [
      'escrow',
      'resolve',
      hold.id,
      '--outcome',
      'release',
      '--reason',
      'a second outcome',
      '--as',
      'admin-carol',
    ],
    context.env,
  );
  if (second.code === 0) throw context.fail('a second resolution of the closed hold was proposed');
  const [movements] = await drill.sql<{ count: number }[]>`
    select count(*)::int as count from escrow_movements
    where hold_id = ${hold.id}::uuid and cause = 'dispute_resolution'`;
  if (movements?.count !== 1) throw context.fail(`${movements?.count ?? 0} resolution movements, not 1`);
  context.figure('resolutions', movements.count, 'one resolution executed; the repeats were refused');
}
