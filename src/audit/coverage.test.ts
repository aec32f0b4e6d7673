import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { creditDeposit, parkInSuspense } from '../deposits/credit.ts';
import { replayDeadLetter } from '../deposits/webhooks.ts';
import { selectPayout, transitionPayouts } from '../payouts/data.ts';
import { unscreenedDestination } from '../payouts/destinations.ts';
import { acceptPayout, refundPayout, settlePayouts } from '../payouts/service.ts';
import { type Transition, transitions } from '../payouts/states.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { runSettlement } from '../streams/settlement.ts';

/**
 * Acceptance 6 of issue 19: every money-moving service function writes an audit row in the
 * transaction of its change. Each journal kind the code posts and each payout transition is
 * driven through its service function; then every journal, every payout state change and every
 * deposit is matched to an audit row written by the same transaction (the same now(): the
 * transaction's start), and each action is checked by name.
 */

let service: TestService;
const actor = { name: 'coverage-test', requestId: undefined };

beforeAll(async () => {
  // Payouts over 5 XLM wait for a second person: the approval transitions are driven through the API.
  service = await startTestService({ env: { PAYOUT_APPROVAL_THRESHOLDS: 'XLM:5' } });
  await service.db.sql`insert into deposit_providers (name, kind) values ('coverage-provider', 'external')`;
});

afterAll(async () => {
  await service.close();
});

/** The journal kinds posted by non-test code: the literals of each postJournal call's `kind`. */
async function postedKinds(): Promise<Set<string>> {
  const kinds = new Set<string>();
  const root = join(import.meta.dirname, '..');
  for (const entry of await readdir(root, { recursive: true })) {
    // Drills post journals into their own throwaway databases, not through a service.
    if (!entry.endsWith('.ts') || entry.endsWith('.test.ts') || entry.startsWith('drills')) continue;
    const text = await readFile(join(root, entry), 'utf8');
    for (const call of text.split('postJournal(').slice(1)) {
      const kindLine = /kind: ([^\n]*)/.exec(call.slice(0, 600))?.[1] ?? '';
      for (const match of kindLine.matchAll(/'([a-z_]+)'\s*(?=,|:|$)/g)) kinds.add(match[1] ?? '');
    }
  }
  return kinds;
}

async function post(
  url: string,
  payload: object,
  as: { role: 'service' | 'admin'; subject: string } = { role: 'service', subject: 'coverage-service' },
) {
  const response = await service.app.inject({
    method: 'POST',
    url,
    payload,
    headers: {
      authorization: `Bearer ${await service.token(as.role, as.subject)}`,
      'idempotency-key': randomUUID(),
    },
  });
  expect(response.statusCode, response.body).toBeLessThan(300);
  return response.json() as { id: string; payloadHash: string; state: string };
}

async function getJson(url: string): Promise<{ payloadHash: string }> {
  const response = await service.app.inject({
    method: 'GET',
    url,
    headers: { authorization: `Bearer ${await service.token('admin', 'bob')}` },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

/** Proposed by one admin, approved by another: the two-person rule's path to moving money. */
async function proposeAndApprove(url: string, payload: object): Promise<void> {
  const proposal = await post(url, payload, { role: 'admin', subject: 'ada' });
  const approved = await post(
    `/v1/approvals/${proposal.id}/approve`,
    { payloadHash: proposal.payloadHash },
    { role: 'admin', subject: 'bob' },
  );
  expect(approved.state).toBe('executed');
}

async function newCustomer(): Promise<string> {
  return (await post('/v1/accounts', { type: 'customer', asset: 'XLM' })).id;
}

async function acceptedPayout(source: string): Promise<string> {
  const view = await withTransaction(service.db.sql, (tx) =>
    acceptPayout(
      tx,
      { sourceAccountId: source, asset: 'XLM', amount: '1', destination: Keypair.random().publicKey() },
      actor,
      unscreenedDestination,
    ),
  );
  return view.id;
}

async function move(id: string, transition: Transition): Promise<void> {
  const payout = await selectPayout(service.db.sql, id);
  if (payout === undefined) throw new Error(`no payout ${id}`);
  await withTransaction(service.db.sql, async (tx) => {
    if (transition === 'attempt_succeeded' || transition === 'confirmed_sent') {
      expect(await settlePayouts(tx, [payout], transition, { actor: actor.name, reference: id })).toEqual([
        id,
      ]);
    } else if (transition === 'operation_failed' || transition === 'refunded_failed') {
      expect(await refundPayout(tx, payout, transition, { actor: actor.name })).toBe(true);
    } else {
      expect(await transitionPayouts(tx, [id], transition, { actor: actor.name })).toEqual([id]);
    }
  });
}

describe('the audit chain covers all money', () => {
  it('drives every journal kind and payout transition through its service and finds each one audited in its transaction', async () => {
    const payer = await newCustomer();
    const payee = await newCustomer();
    // Deposits: a provider webhook, an on-chain payment, a proof, and unattributed chain money.
    for (const source of ['webhook', 'chain', 'proof'] as const) {
      await withTransaction(service.db.sql, (tx) =>
        creditDeposit(tx, {
          provider: source === 'webhook' ? 'coverage-provider' : 'stellar',
          reference: `coverage-${source}`,
          accountId: payer,
          asset: 'XLM',
          amount: '100',
          source,
        }),
      );
    }
    await withTransaction(service.db.sql, (tx) =>
      parkInSuspense(tx, {
        provider: 'stellar',
        reference: 'coverage-suspense',
        asset: 'XLM',
        amountMinor: 5n,
        reason: 'unknown_memo',
      }),
    );
    const transferred = await post('/v1/transfers', {
      sourceAccountId: payer,
      destinationAccountId: payee,
      amount: '1',
    });
    await proposeAndApprove(`/v1/journals/${transferred.id}/reversals`, { reason: 'wrong payee' });
    const hold = await post('/v1/escrow/holds', {
      payerAccountId: payer,
      payeeAccountId: payee,
      asset: 'XLM',
      amount: '10',
    });
    await post(`/v1/escrow/holds/${hold.id}/releases`, { amount: '4' });
    await post(`/v1/escrow/holds/${hold.id}/refunds`, {});
    const disputed = await post('/v1/escrow/holds', {
      payerAccountId: payer,
      payeeAccountId: payee,
      asset: 'XLM',
      amount: '8',
    });
    await post(`/v1/escrow/holds/${disputed.id}/disputes`, { reason: 'not delivered' });
    await proposeAndApprove(`/v1/escrow/holds/${disputed.id}/dispute-resolutions`, {
      outcome: 'split',
      releaseAmount: '5',
      refundAmount: '3',
      reason: 'five to the seller',
    });
    // A stream: created (its hold), settled by a run, then cancelled (pays accrued, refunds rest).
    const hourMs = 3_600_000;
    const start = Date.now() - hourMs;
    const stream = await post('/v1/streams', {
      payerAccountId: payer,
      recipientAccountId: payee,
      asset: 'XLM',
      totalAmount: '12',
      startAt: new Date(start).toISOString(),
      endAt: new Date(start + 2 * hourMs).toISOString(),
      settlement: { intervalSeconds: 60 },
    });
    expect((await runSettlement(service.db.sql, { asOf: new Date(start + hourMs / 2) })).outcome).toBe(
      'succeeded',
    );
    await post(`/v1/streams/${stream.id}/cancel`, {});
    const streamActions = await service.db.sql<{ action: string }[]>`
      select action from audit_log where subject_type = 'stream' and subject_id = ${stream.id} order by id`;
    expect(streamActions.map((row) => row.action)).toEqual([
      'stream.created',
      'stream.settled',
      'stream.cancelled',
    ]);

    const [suspense] = await service.db.sql<{ id: string }[]>`
      select id from accounts where type = 'deposit_suspense' and asset = 'XLM'`;
    await proposeAndApprove('/v1/adjustments', {
      entries: [
        { accountId: suspense?.id, amount: '-0.0000005' },
        { accountId: payee, amount: '0.0000005' },
      ],
      reason: 'suspense belongs to the payee',
      evidenceRef: 'ticket-1',
    });

    // Every payout transition, each through the service function the engine uses for it.
    const paths: Transition[][] = [
      ['attempt_built', 'attempt_succeeded'],
      ['attempt_built', 'operation_failed'],
      ['attempt_built', 'attempt_retry', 'attempt_built', 'outcome_unknown', 'confirmed_sent'],
      ['attempt_built', 'outcome_unknown', 'refunded_failed'],
    ];
    const driven = new Set<Transition>();
    for (const path of paths) {
      const id = await acceptedPayout(payer);
      for (const transition of path) {
        await move(id, transition);
        driven.add(transition);
      }
    }
    // The two-person rule for large payouts, and a cancel, through the API as a caller drives them.
    const large = async () =>
      post('/v1/payouts', {
        sourceAccountId: payer,
        asset: 'XLM',
        amount: '6',
        destination: Keypair.random().publicKey(),
      }) as unknown as Promise<{ id: string; state: string; approvalProposalId: string }>;
    const granted = await large();
    expect(granted.state).toBe('pending_approval');
    const proposal = await getJson(`/v1/approvals/${granted.approvalProposalId}`);
    await post(
      `/v1/approvals/${granted.approvalProposalId}/approve`,
      { payloadHash: proposal.payloadHash },
      { role: 'admin', subject: 'bob' },
    );
    driven.add('approval_granted');
    const refused = await large();
    await post(
      `/v1/approvals/${refused.approvalProposalId}/reject`,
      { reason: 'not this one' },
      { role: 'admin', subject: 'bob' },
    );
    driven.add('approval_refused');
    await post(
      `/v1/payouts/${await acceptedPayout(payer)}/cancel`,
      { reason: 'customer asked' },
      {
        role: 'admin',
        subject: 'bob',
      },
    );
    driven.add('cancelled');
    expect([...driven].sort()).toEqual(Object.keys(transitions).sort());

    const sql = service.db.sql;
    // now() is the transaction's start time, the same for every statement and savepoint of one
    // transaction (a savepoint's rows carry their own xid in xmin, so xmin cannot say it), and the
    // sequential transactions of this test never share one.
    const sameTransaction = sql`a.occurred_at = x.stamped_at`;
    const journals = await sql<{ kind: string; audited: boolean }[]>`
      select x.kind, exists (select 1 from audit_log a where ${sameTransaction}) as audited
      from (select kind, created_at as stamped_at from journal_transactions) x`;
    expect(new Set(journals.map((journal) => journal.kind))).toEqual(await postedKinds());
    expect(journals.filter((journal) => !journal.audited).map((journal) => journal.kind)).toEqual([]);

    const changes = await sql<{ payoutId: string; toState: string; actions: string[] }[]>`
      select x.payout_id as "payoutId", x.to_state as "toState",
        array(select a.action from audit_log a where ${sameTransaction}
              and a.subject_type = 'payout' and a.subject_id = x.payout_id::text) as actions
      from (select payout_id, to_state, at as stamped_at from payout_state_history) x`;
    expect(changes.length).toBeGreaterThan(paths.flat().length);
    for (const change of changes) expect(change.actions).toContain(`payout.${change.toState}`);

    const deposits = await sql<{ accountType: string; actions: string[] }[]>`
      select c.type as "accountType",
        array(select a.action from audit_log a where ${sameTransaction}
              and a.subject_type = 'deposit' and a.subject_id = x.id::text) as actions
      from (select id, account_id, created_at as stamped_at from deposits) x join accounts c on c.id = x.account_id`;
    expect(deposits.map((deposit) => [deposit.accountType, deposit.actions]).sort()).toEqual([
      ['customer', ['deposit.credited']],
      ['customer', ['deposit.credited']],
      ['customer', ['deposit.credited']],
      ['deposit_suspense', ['deposit.suspense']],
    ]);

    const created = await sql<{ subjectId: string }[]>`
      select subject_id as "subjectId" from audit_log where action = 'account.created' order by id`;
    expect(created.map((row) => row.subjectId)).toEqual([payer, payee]);
  });

  it('audits a dead-letter replay with the operator who replayed it, in the replay’s transaction', async () => {
    const account = await newCustomer();
    const body = JSON.stringify({
      reference: 'coverage-dead',
      accountId: account,
      asset: 'XLM',
      amount: '3',
    });
    const [letter] = await service.db.sql<{ id: string }[]>`
      insert into inbound_webhooks (id, provider, body, state, error)
      values (${randomUUID()}::uuid, 'coverage-provider', ${body}::text, 'dead_letter', 'test') returning id`;
    const id = letter?.id ?? '';
    await replayDeadLetter(service.db.sql, id, 'ops-alice');
    const rows = await service.db.sql<
      { actor: string; after: { depositId: string }; sameAsDeposit: boolean }[]
    >`
      select a.actor, a.after,
        exists (select 1 from deposits d where d.id = (a.after ->> 'depositId')::uuid
                and a.occurred_at = d.created_at) as "sameAsDeposit"
      from audit_log a where a.action = 'deposit.dead_letter_replayed' and a.subject_id = ${id}`;
    expect(rows).toEqual([
      { actor: 'ops-alice', after: expect.objectContaining({ state: 'replayed' }), sameAsDeposit: true },
    ]);
  });
});
