import { formatAmount } from '../money/money.ts';
import { stellarDecimals, stroopsPerUnit } from '../stellar/units.ts';
import type { DrillContext } from './harness.ts';
import { openFundedCustomers, type SandboxService, startSandboxService } from './sandbox-service.ts';
import { api, idempotencyKey } from './support.ts';

/** What the escrow drills share: a real hold through the API, balances, and the two admins. */

/** Each customer of an escrow drill is funded with this, straight from `fees`. */
export const escrowFundingMinor = 100n * stroopsPerUnit;
/** The hold the merchant platform opens from the payer to the payee. */
export const holdMinor = 10n * stroopsPerUnit;
/** The admin whose token proposes (the sandbox service's admin token is hers). */
export const proposingAdmin = 'admin-alice';
/** The admin who approves: anyone but the proposer. */
export const approvingAdmin = 'admin-bob';

export type HoldAnswer = { id: string; state: string; remaining: string; type?: string };
export type ProposalAnswer = { id: string; action: string; state: string; payloadHash: string };

export function xlm(minor: bigint): string {
  return formatAmount(minor, stellarDecimals);
}

export type EscrowWorld = { drill: SandboxService; payer: string; payee: string; hold: HoldAnswer };

/**
 * `settledesk serve` on the sandbox, a payer and a payee funded with `escrowFundingMinor` each,
 * and one hold of `holdMinor` from the payer to the payee opened through the API.
 */
export async function openEscrowWorld(context: DrillContext): Promise<EscrowWorld> {
  const drill = await startSandboxService(context);
  const [payer, payee] = await context.step('open and fund two customer accounts', () =>
    openFundedCustomers(context, drill, [escrowFundingMinor, escrowFundingMinor]),
  );
  if (payer === undefined || payee === undefined) throw context.fail('no customer accounts');
  const hold = await context.step('the merchant platform holds part of the payer’s money', () =>
    openHold(context, drill, payer, payee),
  );
  return { drill, payer, payee, hold };
}

/** The merchant platform (service token) holds `holdMinor` of the payer's money for the payee. */
async function openHold(
  context: DrillContext,
  drill: SandboxService,
  payer: string,
  payee: string,
): Promise<HoldAnswer> {
  const created = await api<HoldAnswer>(
    drill.service,
    drill.tokens.service,
    'POST',
    '/v1/escrow/holds',
    {
      payerAccountId: payer,
      payeeAccountId: payee,
      asset: 'XLM',
      amount: xlm(holdMinor),
      reference: `${context.drill}-order`,
    },
    { 'idempotency-key': idempotencyKey(context) },
  );
  if (created.status !== 201 || created.body.state !== 'held')
    throw context.fail(`POST /v1/escrow/holds answered ${created.status}: ${JSON.stringify(created.body)}`);
  return created.body;
}

/** Balances in stroops of the given accounts and of the XLM `escrow` account (key `escrow`). */
export async function escrowBalances(
  drill: SandboxService,
  accounts: readonly string[],
): Promise<Map<string, bigint>> {
  const rows = await drill.sql<{ id: string; type: string; balanceMinor: bigint }[]>`
    select id, type, balance_minor as "balanceMinor" from accounts
    where id = any(${accounts}::uuid[]) or (type = 'escrow' and asset = 'XLM')`;
  return new Map(rows.map((row) => [row.type === 'escrow' ? 'escrow' : row.id, row.balanceMinor]));
}

/** Fails unless every balance is as `expected` says; the error lists what they are. */
export async function expectBalances(
  context: DrillContext,
  drill: SandboxService,
  what: string,
  expected: Record<string, bigint>,
): Promise<void> {
  const actual = await escrowBalances(
    drill,
    Object.keys(expected).filter((key) => key !== 'escrow'),
  );
  const wrong = Object.entries(expected).filter(([key, minor]) => actual.get(key) !== minor);
  if (wrong.length > 0)
    throw context.fail(
      `${what}: ${wrong.map(([key, minor]) => `${key} holds ${actual.get(key)}, not ${minor}`).join('; ')}`,
    );
}

/** The proposer approving their own proposal is refused, and nothing executes. */
export async function expectSelfApprovalRefused(
  context: DrillContext,
  proposal: ProposalAnswer,
): Promise<void> {
  const self = await context.cli(
    ['approvals', 'approve', proposal.id, '--hash', proposal.payloadHash, '--as', proposingAdmin],
    context.env,
  );
  if (self.code === 0) throw context.fail(`the proposer approved their own ${proposal.action}`);
}

/** Runs `work` with the cells' environment changed by `env`, then puts it back. */
export async function withCellEnv<T>(
  context: DrillContext,
  env: Record<string, string>,
  work: () => Promise<T>,
): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, context.env[key]]));
  Object.assign(context.env, env);
  try {
    return await work();
  } finally {
    Object.assign(context.env, saved);
  }
}
