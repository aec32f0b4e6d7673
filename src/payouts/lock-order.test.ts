import { randomBytes, randomUUID } from 'node:crypto';
import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { deadlockRetries, fundFromFees } from '../../test/support/ledger.ts';
import { selectImbalances, selectSystemAccount } from '../ledger/data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import { insertEndpoint } from '../webhooks/data.ts';
import { selectPayout, transitionPayouts } from './data.ts';
import { unscreenedDestination } from './destinations.ts';
import { acceptPayout, refundPayout, refundPayouts, settlePayouts } from './service.ts';

/**
 * Two money transactions interleaved deterministically on real PostgreSQL: a third connection
 * holds a lock that stops the first one at a chosen point, the test waits until PostgreSQL shows
 * each backend waiting on a lock, then lets go. A lock-order cycle shows as a deadlock (40P01),
 * which `withTransaction` retries and counts: the tests assert that the count did not move.
 */

let db: TestDatabase;
let sql: Sql;
let clearingId: string;

const actor = { name: 'lock-order-test', requestId: undefined };
/** How often, and how many times, to look for a backend waiting on a lock before giving up. */
const waitPollMs = 20;
const waitPollsMax = 500;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
  const clearing = await selectSystemAccount(sql, 'payout_clearing', 'XLM');
  clearingId = clearing?.id ?? '';
});

afterAll(async () => {
  await db.drop();
});

/** A merchant account whose id sorts before or after the payout_clearing account's id. */
async function merchant(side: 'below' | 'above'): Promise<{ id: string; ownerRef: string }> {
  const prefix = side === 'below' ? '00000000' : 'ffffffff';
  const id = `${prefix}-${randomUUID().slice(9)}`;
  const ownerRef = `merchant-${randomBytes(4).toString('hex')}`;
  await sql`insert into accounts (id, type, asset, owner_ref) values (${id}::uuid, 'merchant', 'XLM', ${ownerRef}::text)`;
  await fundFromFees(sql, id, 1_000_000_000n);
  expect(side === 'below' ? id < clearingId : id > clearingId).toBe(true);
  return { id, ownerRef };
}

async function subscribe(ownerRef: string): Promise<void> {
  await insertEndpoint(sql, {
    id: randomUUID(),
    url: 'https://merchant.example/hooks',
    description: null,
    ownerRef,
    eventTypes: ['payout.settled', 'payout.failed'],
    secretSealed: randomBytes(32),
    createdBy: actor.name,
  });
}

async function accept(sourceAccountId: string): Promise<string> {
  const view = await withTransaction(sql, (tx) =>
    acceptPayout(
      tx,
      { sourceAccountId, destination: Keypair.random().publicKey(), asset: 'XLM', amount: '1' },
      actor,
      unscreenedDestination,
    ),
  );
  return view.id;
}

/** An accepted payout as the engine leaves it once its transaction is built and sent. */
async function submitted(sourceAccountId: string): Promise<string> {
  const id = await accept(sourceAccountId);
  expect(await transitionPayouts(sql, [id], 'attempt_built', { actor: actor.name })).toEqual([id]);
  return id;
}

async function payout(id: string) {
  const row = await selectPayout(sql, id);
  if (!row) throw new Error(`no payout ${id}`);
  return row;
}

/** Runs `work` in a transaction, reporting its backend's pid before it starts. */
function startTransaction<T>(work: (tx: Tx) => Promise<T>): {
  pid: () => number | undefined;
  done: Promise<T>;
} {
  let pid: number | undefined;
  const done = withTransaction(sql, async (tx) => {
    const [row] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
    pid = row?.pid;
    return work(tx);
  });
  return { pid: () => pid, done };
}

/** Waits until PostgreSQL shows the transaction's backend waiting for a lock held by another. */
async function waitingOnLock(transaction: { pid: () => number | undefined }): Promise<void> {
  for (let poll = 0; poll < waitPollsMax; poll += 1) {
    const pid = transaction.pid();
    if (pid !== undefined) {
      const [row] = await sql<{ waiting: boolean }[]>`
        select wait_event_type = 'Lock' as waiting from pg_stat_activity where pid = ${pid}::int`;
      if (row?.waiting) return;
    }
    await new Promise((resolve) => setTimeout(resolve, waitPollMs));
  }
  throw new Error('the transaction never waited on a lock: the interleaving did not happen');
}

/** Holds `statement`'s lock in its own transaction until `release` is called. */
async function holdLock(statement: (tx: Tx) => Promise<unknown>): Promise<{ release: () => Promise<void> }> {
  let release = () => {};
  let locked = () => {};
  const isLocked = new Promise<void>((resolve) => {
    locked = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const holder = withTransaction(sql, async (tx) => {
    await statement(tx);
    locked();
    await released;
  });
  await isLocked;
  return {
    release: async () => {
      release();
      await holder;
    },
  };
}

describe('money transactions lock in one global order', () => {
  it('settles a payout while another payout of the same merchant fails and is refunded, with its endpoint subscribed, without a deadlock', async () => {
    // The merchant's id sorts before the clearing account's: the refund locks the merchant first.
    const { id: merchantId, ownerRef } = await merchant('below');
    await subscribe(ownerRef);
    const settling = await payout(await submitted(merchantId));
    const failing = await payout(await submitted(merchantId));
    const retriesBefore = await deadlockRetries();

    // Every posting stops before writing its entries while this lock is held, after it locked its
    // accounts: the settlement holds payout_clearing and settlement there, not yet its event.
    const entries = await holdLock((tx) => tx`lock table entries in share mode`);
    const settle = startTransaction((tx) =>
      settlePayouts(tx, [settling], 'attempt_succeeded', { actor: actor.name, reference: settling.id }),
    );
    await waitingOnLock(settle);
    const refund = startTransaction((tx) =>
      refundPayout(tx, failing, 'operation_failed', { actor: actor.name, reason: 'op_no_destination' }),
    );
    await waitingOnLock(refund);
    await entries.release();

    expect(await settle.done).toEqual([settling.id]);
    expect(await refund.done).toBe(true);
    expect(await deadlockRetries()).toBe(retriesBefore);
    expect((await payout(settling.id)).state).toBe('settled');
    expect((await payout(failing.id)).state).toBe('failed');
    const events = await sql<{ type: string; deliveries: number }[]>`
      select ev.type, (select count(*)::int from merchant_webhook_deliveries d where d.event_id = ev.id) as deliveries
      from merchant_webhook_events ev where ev.account_id = ${merchantId}::uuid order by ev.type`;
    expect(events).toEqual([
      { type: 'payout.failed', deliveries: 1 },
      { type: 'payout.settled', deliveries: 1 },
    ]);
    expect(await selectImbalances(sql)).toEqual([]);
  });

  it('refunds a failed batch from merchants on both sides of the clearing account in one transaction, each with its own reason', async () => {
    const above = await merchant('above');
    const below = await merchant('below');
    const first = await payout(await submitted(above.id));
    const second = await payout(await submitted(below.id));
    // Refunding them one posting at a time would lock `above`, then `below` under it: refused.
    const moved = await withTransaction(sql, (tx) =>
      refundPayouts(
        tx,
        [
          { payout: first, reason: 'op_no_destination' },
          { payout: second, reason: 'op_no_trust' },
        ],
        'operation_failed',
        { actor: actor.name },
      ),
    );
    expect(moved).toEqual([first.id, second.id]);
    expect((await payout(first.id)).stateReason).toContain('op_no_destination');
    expect((await payout(second.id)).stateReason).toContain('op_no_trust');
    const [balances] = await sql<{ above: bigint; below: bigint }[]>`
      select (select balance_minor from accounts where id = ${above.id}::uuid) as above,
             (select balance_minor from accounts where id = ${below.id}::uuid) as below`;
    expect(balances).toEqual({ above: 1_000_000_000n, below: 1_000_000_000n });
    expect(await selectImbalances(sql)).toEqual([]);
  });

  it('accepts a payout while a refund to the same account posts, without a deadlock', async () => {
    // The merchant's id sorts after the clearing account's: in id order the clearing comes first.
    const { id: merchantId, ownerRef } = await merchant('above');
    await subscribe(ownerRef);
    const failing = await payout(await submitted(merchantId));
    const retriesBefore = await deadlockRetries();

    // Someone else holds the merchant's row: the acceptance queues for it first, then the refund.
    const row = await holdLock(
      (tx) => tx`select 1 from accounts where id = ${merchantId}::uuid for no key update`,
    );
    const acceptance = startTransaction((tx) =>
      acceptPayout(
        tx,
        { sourceAccountId: merchantId, destination: Keypair.random().publicKey(), asset: 'XLM', amount: '1' },
        actor,
        unscreenedDestination,
      ),
    );
    await waitingOnLock(acceptance);
    const refund = startTransaction((tx) =>
      refundPayout(tx, failing, 'operation_failed', { actor: actor.name, reason: 'op_no_destination' }),
    );
    await waitingOnLock(refund);
    await row.release();

    expect((await acceptance.done).state).toBe('accepted');
    expect(await refund.done).toBe(true);
    expect(await deadlockRetries()).toBe(retriesBefore);
    expect(await selectImbalances(sql)).toEqual([]);
  });
});
