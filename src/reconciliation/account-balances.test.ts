import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { fundFromFees } from '../../test/support/ledger.ts';
import { postJournal } from '../ledger/service.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import { runDetector } from './runner.ts';
import { metric, openFindings, testDeps } from './test-support.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

async function customer(sql: Sql): Promise<string> {
  const [row] = await sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  return row?.id ?? '';
}

function transfer(tx: Tx, from: string, to: string, amountMinor: bigint) {
  return postJournal(tx, {
    kind: 'transfer',
    entries: [
      { accountId: from, amountMinor: -amountMinor },
      { accountId: to, amountMinor },
    ],
  });
}

/** A posting left open: its entries have ids but are invisible until `commit` (or gone after `rollback`). */
async function openPosting(sql: Sql, from: string, to: string, amountMinor: bigint) {
  let release: (commit: boolean) => void = () => {};
  const decision = new Promise<boolean>((resolve) => {
    release = resolve;
  });
  let posted: () => void = () => {};
  const written = new Promise<void>((resolve) => {
    posted = resolve;
  });
  const finished = sql
    .begin(async (tx) => {
      await transfer(tx, from, to, amountMinor);
      posted();
      if (!(await decision)) throw new RolledBack();
    })
    .catch((error: unknown) => {
      if (!(error instanceof RolledBack)) throw error;
    });
  await written;
  return {
    commit: async () => {
      release(true);
      await finished;
    },
    rollback: async () => {
      release(false);
      await finished;
    },
  };
}

class RolledBack extends Error {}

async function gapsOf(sql: Sql, detector: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from reconciliation_entry_gaps where detector = ${detector}`;
  return row?.count ?? 0;
}

/** The running totals agree with the balances and the assets sum to zero (what a clean run concludes). */
async function totalsAgree(sql: Sql): Promise<boolean> {
  const [row] = await sql<{ wrong: number }[]>`
    select (
      (select count(*) from accounts a left join reconciliation_account_totals t on t.account_id = a.id
       where a.balance_minor <> coalesce(t.total_minor, 0))
      + (select count(*) from reconciliation_asset_totals where total_minor <> 0)
    )::int as wrong`;
  return row?.wrong === 0;
}

describe('account_balances', () => {
  it('reports nothing when every balance is the sum of its entries', async () => {
    const alice = await customer(db.sql);
    const bob = await customer(db.sql);
    await fundFromFees(db.sql, alice, 9_000n);
    await db.sql.begin((tx) => transfer(tx, alice, bob, 4_000n));
    const report = await runDetector(testDeps(db.sql), 'account_balances');
    expect(report).toMatchObject({ outcome: 'completed', findings: { created: 0, seen: 0 } });
    expect(await openFindings(db.sql, 'account_balance_mismatch')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'account_balance_mismatch' })).toBe(0);
  });

  it('finds a balance changed without entries and entries written without their balances, and resolves them when repaired', async () => {
    const carol = await customer(db.sql);
    const dave = await customer(db.sql);
    await fundFromFees(db.sql, carol, 1_000n);
    const [fees] = await db.sql<
      { id: string }[]
    >`select id from accounts where type = 'fees' and asset = 'XLM'`;
    await db.sql`update accounts set balance_minor = balance_minor + 7 where id = ${carol}::uuid`;
    // A balanced journal inserted past the ledger's code: the entries exist, the balances never moved.
    await db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      const journalId = randomUUID();
      await tx`insert into journal_transactions (id, kind) values (${journalId}::uuid, 'test_corruption')`;
      await tx`insert into entries (journal_id, account_id, asset, amount_minor)
               values (${journalId}::uuid, ${fees?.id ?? ''}::uuid, 'XLM', -11),
                      (${journalId}::uuid, ${dave}::uuid, 'XLM', 11)`;
    });
    const createdBefore = await metric('reconciliation_findings_total', { kind: 'account_balance_mismatch' });

    const report = await runDetector(testDeps(db.sql), 'account_balances');
    expect(report.findings.created).toBe(3);
    const findings = await openFindings(db.sql, 'account_balance_mismatch');
    const bySubject = Object.fromEntries(findings.map((finding) => [finding.subject, finding.evidence]));
    expect(bySubject[carol]).toMatchObject({
      balance: '0.0001007',
      entriesSum: '0.0001000',
      difference: '0.0000007',
    });
    expect(bySubject[fees?.id ?? '']).toMatchObject({ type: 'fees', difference: '0.0000011' });
    expect(bySubject[dave]).toMatchObject({ balance: '0.0000000', entriesSum: '0.0000011' });
    expect(await metric('reconciliation_findings_total', { kind: 'account_balance_mismatch' })).toBe(
      createdBefore + 3,
    );
    expect(await metric('reconciliation_findings_open', { kind: 'account_balance_mismatch' })).toBe(3);

    await db.sql`update accounts set balance_minor = balance_minor - 7 where id = ${carol}::uuid`;
    await db.sql`update accounts set balance_minor = balance_minor - 11 where id = ${fees?.id ?? ''}::uuid`;
    await db.sql`update accounts set balance_minor = balance_minor + 11 where id = ${dave}::uuid`;
    const repaired = await runDetector(testDeps(db.sql), 'account_balances');
    expect(repaired.findings.resolved).toBe(3);
    expect(await openFindings(db.sql, 'account_balance_mismatch')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'account_balance_mismatch' })).toBe(0);
  });

  it('counts a posting that commits after a higher entry id was scanned, exactly once', async () => {
    const [a, b, c, d] = [
      await customer(db.sql),
      await customer(db.sql),
      await customer(db.sql),
      await customer(db.sql),
    ];
    await fundFromFees(db.sql, a, 1_000n);
    await fundFromFees(db.sql, c, 1_000n);
    await runDetector(testDeps(db.sql), 'account_balances');
    await runDetector(testDeps(db.sql), 'ledger_balance');

    // Lower ids, still open; then higher ids, committed.
    const late = await openPosting(db.sql, a, b, 300n);
    await db.sql.begin((tx) => transfer(tx, c, d, 200n));
    const [ids] = await db.sql<{ maxId: bigint }[]>`select max(id) as "maxId" from entries`;
    for (const detector of ['account_balances', 'ledger_balance'] as const) {
      const report = await runDetector(testDeps(db.sql), detector);
      expect(report.findings.created).toBe(0);
      expect(await gapsOf(db.sql, detector)).toBe(2);
    }
    const [cursor] = await db.sql<{ cursor: bigint }[]>`
      select cursor from reconciliation_checkpoints where detector = 'account_balances'`;
    expect(cursor?.cursor).toBe(ids?.maxId);

    await late.commit();
    for (const detector of ['account_balances', 'ledger_balance'] as const) {
      const report = await runDetector(testDeps(db.sql), detector);
      expect(report).toMatchObject({ scanned: 2, findings: { created: 0 } });
      expect(await gapsOf(db.sql, detector)).toBe(0);
    }
    const totals = await db.sql<{ accountId: string; total: string }[]>`
      select account_id as "accountId", total_minor::text as total from reconciliation_account_totals
      where account_id = any(${[a, b]}::uuid[]) order by total_minor`;
    expect(Object.fromEntries(totals.map((row) => [row.accountId, row.total]))).toEqual({
      [a]: '700',
      [b]: '300',
    });
    expect(await totalsAgree(db.sql)).toBe(true);
    await runDetector(testDeps(db.sql), 'account_balances');
    expect(await totalsAgree(db.sql)).toBe(true);
  });

  it('forgets the gap of a rolled-back posting once it is older than the late-commit limit', async () => {
    const [a, b] = [await customer(db.sql), await customer(db.sql)];
    await fundFromFees(db.sql, a, 500n);
    const doomed = await openPosting(db.sql, a, b, 100n);
    await doomed.rollback();
    await fundFromFees(db.sql, b, 10n);
    await runDetector(testDeps(db.sql), 'account_balances');
    expect(await gapsOf(db.sql, 'account_balances')).toBeGreaterThanOrEqual(2);
    await runDetector(testDeps(db.sql, { settings: { lateCommitSecondsMax: 0 } }), 'account_balances');
    expect(await gapsOf(db.sql, 'account_balances')).toBe(0);
    expect(await openFindings(db.sql, 'account_balance_mismatch')).toEqual([]);
  });
});

describe('the running totals, under any interleaving of postings, late commits, rollbacks and runs', () => {
  type Step =
    | { kind: 'post'; from: number; to: number; amount: number }
    | { kind: 'open'; from: number; to: number; amount: number }
    | { kind: 'finish'; which: number; commit: boolean }
    | { kind: 'run' };
  type OpenPosting = Awaited<ReturnType<typeof openPosting>>;

  const accountsPerCase = 6;
  const openPostingsMax = 3;
  const posting = (kind: 'post' | 'open') =>
    fc.record({
      kind: fc.constant(kind),
      from: fc.nat(accountsPerCase - 1),
      to: fc.nat(accountsPerCase - 1),
      amount: fc.integer({ min: 1, max: 50 }),
    });
  const step: fc.Arbitrary<Step> = fc.oneof(
    posting('post'),
    posting('open'),
    fc.record({ kind: fc.constant('finish' as const), which: fc.nat(openPostingsMax), commit: fc.boolean() }),
    fc.record({ kind: fc.constant('run' as const) }),
  );

  /**
   * An open posting holds its accounts' row locks, so a posting touching them would wait: accounts
   * of open postings stay busy until every open posting has ended.
   */
  async function play(
    steps: readonly Step[],
    accounts: readonly string[],
    open: OpenPosting[],
  ): Promise<void> {
    const busy = new Set<string>();
    for (const current of steps) {
      if (current.kind === 'run') {
        await runDetector(testDeps(db.sql), 'account_balances');
        await runDetector(testDeps(db.sql), 'ledger_balance');
        continue;
      }
      if (current.kind === 'finish') {
        const ended = open.splice(current.which % Math.max(open.length, 1), 1)[0];
        if (ended) await (current.commit ? ended.commit() : ended.rollback());
        if (open.length === 0) busy.clear();
        continue;
      }
      const from = accounts[current.from] ?? '';
      const to = accounts[current.to] ?? '';
      if (from === to || busy.has(from) || busy.has(to)) continue;
      if (current.kind === 'post') {
        await db.sql.begin((tx) => transfer(tx, from, to, BigInt(current.amount)));
      } else if (open.length < openPostingsMax) {
        open.push(await openPosting(db.sql, from, to, BigInt(current.amount)));
        busy.add(from);
        busy.add(to);
      }
    }
  }

  it('always end equal to the balances, with nothing reported, once every posting has ended', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
        const accounts: string[] = [];
        for (let index = 0; index < accountsPerCase; index += 1) {
          const id = await customer(db.sql);
          await fundFromFees(db.sql, id, 10_000n);
          accounts.push(id);
        }
        const open: OpenPosting[] = [];
        try {
          await play(steps, accounts, open);
        } finally {
          // Never leave a posting open: a failed case would block every later one on its locks.
          while (open.length > 0) await open.pop()?.commit();
        }
        const accountsRun = await runDetector(testDeps(db.sql), 'account_balances');
        const ledgerRun = await runDetector(testDeps(db.sql), 'ledger_balance');
        expect(accountsRun.findings.created + ledgerRun.findings.created).toBe(0);
        expect(await openFindings(db.sql, 'account_balance_mismatch')).toEqual([]);
        expect(await openFindings(db.sql, 'ledger_imbalance')).toEqual([]);
        expect(await totalsAgree(db.sql)).toBe(true);
      }),
      { numRuns: 40 },
    );
  }, 180_000);
});
