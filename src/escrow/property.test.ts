import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fundFromFees } from '../../test/support/ledger.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { selectImbalances } from '../ledger/data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import { DomainError } from '../platform/errors.ts';
import { selectOpenHoldSums } from './data.ts';
import { createHold, expireDueHolds, moveFromHold, openDispute, proposeResolution } from './service.ts';
import type { HoldState } from './states.ts';

/**
 * Random sequences of holds, partial releases and refunds, disputes, two-person resolutions,
 * clock moves (a hold's expires_at set in the past: the database's now() passes it) and expiry
 * sweeps, run against the service and against a model. After every step the model must have
 * given the same answer (success or the exact problem type), and after every sequence the
 * database must agree with the model on every hold and balance, and the money invariants hold.
 */

let service: TestService;

beforeAll(async () => {
  service = await startTestService();
});

afterAll(async () => {
  await service.close();
});

const partiesCount = 3;
const actor = { name: 'property', requestId: undefined };

type ModelHold = {
  id: string;
  payer: number;
  payee: number;
  amount: number;
  released: number;
  refunded: number;
  state: HoldState;
  pastExpiry: boolean;
  expiryOutcome: 'refund' | 'release';
};

type Step =
  | { op: 'create'; payer: number; payee: number; amount: number; expiryOutcome: 'refund' | 'release' }
  | { op: 'release' | 'refund'; hold: number; amount: number | undefined }
  | { op: 'dispute'; hold: number }
  | { op: 'resolve'; hold: number; outcome: 'release' | 'refund' | 'split'; tenths: number }
  | { op: 'pass_expiry'; hold: number }
  | { op: 'sweep' };

const holdIndex = fc.nat({ max: 7 });
const createArbitrary = fc.record({
  op: fc.constant('create' as const),
  payer: fc.nat({ max: partiesCount - 1 }),
  payee: fc.nat({ max: partiesCount - 1 }),
  amount: fc.integer({ min: 1, max: 40 }),
  expiryOutcome: fc.constantFrom('refund' as const, 'release' as const),
});
/** Weighted towards money moves; clock moves and sweeps are rarer, as in life. */
const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: createArbitrary, weight: 3 },
  {
    arbitrary: fc.record({
      op: fc.constantFrom('release' as const, 'refund' as const),
      hold: holdIndex,
      amount: fc.option(fc.integer({ min: 1, max: 25 }), { nil: undefined, freq: 4 }),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ op: fc.constant('dispute' as const), hold: holdIndex }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant('resolve' as const),
      hold: holdIndex,
      outcome: fc.constantFrom('release' as const, 'refund' as const, 'split' as const),
      tenths: fc.integer({ min: 0, max: 10 }),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant('pass_expiry' as const), hold: holdIndex }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('sweep' as const) }), weight: 1 },
);
/** Every sequence starts with a few holds, so the moves after them have something to act on. */
const sequenceArbitrary = fc
  .tuple(
    fc.array(createArbitrary, { minLength: 2, maxLength: 4 }),
    fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }),
  )
  .map(([creates, steps]): Step[] => [...creates, ...steps]);

const live = (hold: ModelHold) => hold.state === 'held' || hold.state === 'partially_released';
const remaining = (hold: ModelHold) => hold.amount - hold.released - hold.refunded;
/** What a reader sees: a live hold past its expiry is expired. */
const seen = (hold: ModelHold): HoldState => (live(hold) && hold.pastExpiry ? 'expired' : hold.state);

/** Amounts are whole units of XLM (7 decimals): the model counts units, the ledger stroops. */
const unit = 10_000_000n;

async function answer(work: () => Promise<unknown>): Promise<string> {
  try {
    const result = await work();
    if (result && typeof result === 'object' && 'refused' in result) {
      return (result.refused as DomainError).type;
    }
    return 'ok';
  } catch (error) {
    if (error instanceof DomainError) return error.type;
    throw error;
  }
}

class Model {
  readonly holds: ModelHold[] = [];
  readonly balances: number[];
  constructor(balances: number[]) {
    this.balances = balances;
  }

  create(step: Extract<Step, { op: 'create' }>): string {
    if (step.payer === step.payee) return 'escrow/invalid-party';
    if ((this.balances[step.payer] ?? 0) < step.amount) return 'ledger/insufficient-funds';
    this.balances[step.payer] = (this.balances[step.payer] ?? 0) - step.amount;
    return 'ok';
  }

  added(hold: ModelHold): void {
    this.holds.push(hold);
  }

  refusal(hold: ModelHold): string | undefined {
    const state = seen(hold);
    if (state === 'closed') return 'escrow/hold-closed';
    if (state === 'expired') return 'escrow/hold-expired';
    return undefined;
  }

  pay(hold: ModelHold, release: number, refund: number): void {
    hold.released += release;
    hold.refunded += refund;
    this.balances[hold.payee] = (this.balances[hold.payee] ?? 0) + release;
    this.balances[hold.payer] = (this.balances[hold.payer] ?? 0) + refund;
  }

  move(hold: ModelHold, kind: 'release' | 'refund', amount: number | undefined): string {
    const refused = this.refusal(hold);
    if (refused) return refused;
    if (hold.state === 'disputed') return 'escrow/hold-disputed';
    const moved = amount ?? remaining(hold);
    if (moved > remaining(hold)) return 'escrow/exceeds-remaining';
    this.pay(hold, kind === 'release' ? moved : 0, kind === 'refund' ? moved : 0);
    hold.state = remaining(hold) === 0 ? 'closed' : 'partially_released';
    return 'ok';
  }

  dispute(hold: ModelHold): string {
    const refused = this.refusal(hold);
    if (refused) return refused;
    if (hold.state === 'disputed') return 'escrow/already-disputed';
    hold.state = 'disputed';
    return 'ok';
  }

  /** The split the test proposes: `tenths` of the remainder released, the rest refunded. */
  resolve(hold: ModelHold, outcome: 'release' | 'refund' | 'split', tenths: number): string {
    if (hold.state !== 'disputed') return 'escrow/not-disputed';
    const rest = remaining(hold);
    const release =
      outcome === 'release' ? rest : outcome === 'refund' ? 0 : Math.floor((rest * tenths) / 10);
    const refund = rest - release;
    if (outcome === 'split' && (release === 0 || refund === 0)) return 'escrow/resolution-mismatch';
    this.pay(hold, release, refund);
    hold.state = 'closed';
    return 'ok';
  }

  sweep(): number {
    let expired = 0;
    for (const hold of this.holds) {
      if (!live(hold) || !hold.pastExpiry) continue;
      const rest = remaining(hold);
      this.pay(hold, hold.expiryOutcome === 'release' ? rest : 0, hold.expiryOutcome === 'refund' ? rest : 0);
      hold.state = 'expired';
      expired += 1;
    }
    return expired;
  }
}

async function newParties(funds: readonly number[]): Promise<string[]> {
  const ids: string[] = [];
  for (const units of funds) {
    const [row] = await service.db.sql<{ id: string }[]>`
      insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
    const id = row?.id ?? '';
    if (units > 0) await fundFromFees(service.db.sql, id, BigInt(units) * unit);
    ids.push(id);
  }
  return ids;
}

async function run(steps: readonly Step[], funds: readonly number[]): Promise<void> {
  const sql = service.db.sql;
  const approvals = service.domains.approvals;
  const parties = await newParties(funds);
  const model = new Model([...funds]);
  for (const [index, step] of steps.entries()) {
    const label = `step ${index} ${JSON.stringify(step)}`;
    if (step.op === 'create') {
      const expected = model.create(step);
      let createdId: string | undefined;
      const got = await answer(async () => {
        const hold = await withTransaction(sql, (tx) =>
          createHold(
            tx,
            {
              payerAccountId: parties[step.payer] ?? '',
              payeeAccountId: parties[step.payee] ?? '',
              asset: 'XLM',
              amount: String(step.amount),
              expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
              expiryOutcome: step.expiryOutcome,
            },
            actor,
          ),
        );
        createdId = hold.id;
      });
      expect(got, label).toBe(expected);
      if (createdId) {
        model.added({
          id: createdId,
          payer: step.payer,
          payee: step.payee,
          amount: step.amount,
          released: 0,
          refunded: 0,
          state: 'held',
          pastExpiry: false,
          expiryOutcome: step.expiryOutcome,
        });
      }
      continue;
    }
    if (step.op === 'sweep') {
      const expected = model.sweep();
      const swept = await withTransaction(sql, (tx) => expireDueHolds(tx, 100));
      expect(swept, label).toBe(expected);
      continue;
    }
    const hold = model.holds[step.hold % Math.max(model.holds.length, 1)];
    if (!hold) continue;
    if (step.op === 'pass_expiry') {
      await sql`update escrow_holds set expires_at = now() - interval '1 second' where id = ${hold.id}::uuid`;
      hold.pastExpiry = true;
    } else if (step.op === 'dispute') {
      const expected = model.dispute(hold);
      const got = await answer(() =>
        withTransaction(sql, (tx) =>
          openDispute(tx, { holdId: hold.id, reason: 'property', evidenceRefs: [] }, actor),
        ),
      );
      expect(got, label).toBe(expected);
    } else if (step.op === 'resolve') {
      const rest = BigInt(remaining(hold));
      const expected = model.resolve(hold, step.outcome, step.tenths);
      const releaseUnits = step.outcome === 'split' ? (rest * BigInt(step.tenths)) / 10n : undefined;
      const got = await answer(async () => {
        const proposal = await withTransaction(sql, (tx) =>
          proposeResolution(tx, approvals, {
            holdId: hold.id,
            outcome: step.outcome,
            releaseAmount: releaseUnits === undefined ? undefined : String(releaseUnits),
            refundAmount: releaseUnits === undefined ? undefined : String(rest - releaseUnits),
            reason: 'property',
            proposer: 'ada',
            requestId: undefined,
          }),
        );
        const approved = await approvals.approve(sql, {
          id: proposal.id,
          reviewer: 'bob',
          payloadHash: proposal.payloadHash,
        });
        expect(approved.state).toBe('executed');
      });
      expect(got, label).toBe(expected);
    } else {
      const expected = model.move(hold, step.op, step.amount);
      const got = await answer(() =>
        withTransaction(sql, (tx) =>
          moveFromHold(
            tx,
            {
              holdId: hold.id,
              kind: step.op,
              amount: step.amount === undefined ? undefined : String(step.amount),
            },
            actor,
          ),
        ),
      );
      expect(got, label).toBe(expected);
    }
  }
  // Nothing past its expiry is left live for the next sequence's sweeps.
  model.sweep();
  await withTransaction(sql, (tx) => expireDueHolds(tx, 100));
  await checkAgainst(model, parties);
}

async function checkAgainst(model: Model, parties: readonly string[]): Promise<void> {
  const sql = service.db.sql;
  const ids = model.holds.map((hold) => hold.id);
  const rows = await sql<
    { id: string; amount: bigint; released: bigint; refunded: bigint; state: HoldState }[]
  >`
    select id, amount_minor as amount, released_minor as released, refunded_minor as refunded, state
    from escrow_holds where id = any(${ids}::uuid[])`;
  for (const hold of model.holds) {
    const row = rows.find((candidate) => candidate.id === hold.id);
    expect(row, hold.id).toBeDefined();
    expect({
      released: row?.released,
      refunded: row?.refunded,
      state: row?.state,
    }).toEqual({
      released: BigInt(hold.released) * unit,
      refunded: BigInt(hold.refunded) * unit,
      state: hold.state,
    });
    const rest = (row?.amount ?? 0n) - (row?.released ?? 0n) - (row?.refunded ?? 0n);
    expect(rest).toBe(BigInt(remaining(hold)) * unit);
    expect(rest >= 0n).toBe(true);
  }
  const accounts = await sql<{ id: string; balance: bigint }[]>`
    select id, balance_minor as balance from accounts where id = any(${parties as string[]}::uuid[])`;
  expect(parties.map((id) => accounts.find((account) => account.id === id)?.balance)).toEqual(
    model.balances.map((units) => BigInt(units) * unit),
  );
  // Across every sequence so far: escrow holds exactly the open remainders, the ledger sums to
  // zero, and no customer balance is negative.
  const [escrow] = await sql<{ balance: bigint }[]>`
    select balance_minor as balance from accounts where type = 'escrow' and asset = 'XLM'`;
  expect(escrow?.balance).toBe((await selectOpenHoldSums(sql)).get('XLM') ?? 0n);
  expect(await selectImbalances(sql)).toEqual([]);
  const negative =
    await sql`select id from accounts where type in ('customer', 'merchant') and balance_minor < 0`;
  expect(negative).toHaveLength(0);
}

describe('escrow against a model', () => {
  it('agrees on every answer, and keeps released + refunded + remaining = amount and escrow = open remainders', async () => {
    await fc.assert(
      fc.asyncProperty(
        sequenceArbitrary,
        fc.array(fc.integer({ min: 0, max: 100 }), { minLength: partiesCount, maxLength: partiesCount }),
        run,
      ),
      { numRuns: 100 },
    );
  });
});
