import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';

export type Routing = { defaultProvider: string; cohortProvider: string | null; cohortPercent: number };
export type RoutingRow = Routing & { updatedAt: Date; updatedBy: string; reason: string };

export async function selectRouting(
  db: Executor,
  options: { lock: boolean } = { lock: false },
): Promise<RoutingRow> {
  const [row] = await db<RoutingRow[]>`
    select default_provider as "defaultProvider", cohort_provider as "cohortProvider", cohort_percent as "cohortPercent",
           updated_at as "updatedAt", updated_by as "updatedBy", reason
    from deposit_routing ${options.lock ? db`for update` : db``}`;
  assert(row, 'deposit_routing has no row');
  return row;
}

/** Sets the routing and appends it to the history in one statement. */
export async function updateRouting(
  db: Executor,
  routing: Routing,
  actor: string,
  reason: string,
): Promise<void> {
  await db`
    with updated as (
      update deposit_routing
      set default_provider = ${routing.defaultProvider}::text, cohort_provider = ${routing.cohortProvider}::text,
          cohort_percent = ${routing.cohortPercent}::int, updated_at = now(), updated_by = ${actor}::text,
          reason = ${reason}::text
      returning default_provider, cohort_provider, cohort_percent
    )
    insert into deposit_routing_history (default_provider, cohort_provider, cohort_percent, changed_by, reason)
    select default_provider, cohort_provider, cohort_percent, ${actor}::text, ${reason}::text from updated`;
}

/** The routing in force before the current one, if any. */
export async function selectPreviousRouting(db: Executor): Promise<Routing | undefined> {
  const [row] = await db<Routing[]>`
    select default_provider as "defaultProvider", cohort_provider as "cohortProvider", cohort_percent as "cohortPercent"
    from deposit_routing_history order by id desc offset 1 limit 1`;
  return row;
}

export async function insertIntent(
  db: Executor,
  intent: {
    id: string;
    accountId: string;
    provider: string;
    memoId: bigint | null;
    reference: string | null;
    amountMinor: bigint | null;
    createdBy: string;
  },
): Promise<void> {
  await db`
    insert into deposit_intents (id, account_id, provider, memo_id, reference, amount_minor, created_by)
    values (${intent.id}::uuid, ${intent.accountId}::uuid, ${intent.provider}::text, ${intent.memoId}::int8,
            ${intent.reference}::text, ${intent.amountMinor}::int8, ${intent.createdBy}::text)`;
}

/** What a provider reference was issued for: the intent's account, its asset and fixed amount. */
export type IssuedIntent = {
  id: string;
  accountId: string;
  asset: string;
  precision: number;
  amountMinor: bigint | null;
};

export async function selectIntentByReference(
  db: Executor,
  provider: string,
  reference: string,
): Promise<IssuedIntent | undefined> {
  const [row] = await db<IssuedIntent[]>`
    select i.id, i.account_id as "accountId", a.asset, s.precision, i.amount_minor as "amountMinor"
    from deposit_intents i join accounts a on a.id = i.account_id join assets s on s.code = a.asset
    where i.provider = ${provider}::text and i.reference = ${reference}::text`;
  return row;
}
