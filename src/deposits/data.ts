import type { Executor } from '../platform/db/types.ts';

export const providerModes = ['standard', 'read_only', 'disabled'] as const;
export type ProviderMode = (typeof providerModes)[number];
export type ProviderRow = { name: string; kind: 'stellar' | 'external'; mode: ProviderMode };

export type DepositRow = {
  id: string;
  provider: string;
  reference: string;
  payloadHash: string;
  accountId: string;
  asset: string;
  amountMinor: bigint;
  source: 'webhook' | 'chain' | 'proof';
  createdAt: Date;
};

/** Why a deposit is held in `deposit_suspense` instead of credited (the webhook's, then the watcher's). */
export const suspenseReasons = [
  'unknown_reference',
  'account_differs',
  'asset_differs',
  'amount_differs',
  'no_memo',
  'unknown_memo',
  'account_refused',
  'account_merge',
] as const;
export type SuspenseReason = (typeof suspenseReasons)[number];

export type SuspenseRow = {
  depositId: string;
  provider: string;
  reference: string;
  source: DepositRow['source'];
  reason: SuspenseReason;
  asset: string;
  amountMinor: bigint;
  precision: number;
  intentId: string | null;
  createdAt: Date;
};

export type InboundWebhookRow = {
  id: string;
  provider: string;
  body: string;
  state: 'processed' | 'dead_letter' | 'replayed';
  outcome: string | null;
  error: string | null;
  attempts: number;
  receivedAt: Date;
};

export async function selectProvider(db: Executor, name: string): Promise<ProviderRow | undefined> {
  const [row] = await db<
    ProviderRow[]
  >`select name, kind, mode from deposit_providers where name = ${name}::text`;
  return row;
}

export async function selectProviders(
  db: Executor,
): Promise<(ProviderRow & { updatedAt: Date; updatedBy: string })[]> {
  return db<(ProviderRow & { updatedAt: Date; updatedBy: string })[]>`
    select name, kind, mode, updated_at as "updatedAt", updated_by as "updatedBy" from deposit_providers order by name`;
}

export async function insertProvider(
  db: Executor,
  name: string,
  actor: string,
): Promise<ProviderRow | undefined> {
  const [row] = await db<ProviderRow[]>`
    insert into deposit_providers (name, kind, updated_by) values (${name}::text, 'external', ${actor}::text)
    on conflict do nothing returning name, kind, mode`;
  return row;
}

export async function updateProviderMode(
  db: Executor,
  name: string,
  mode: ProviderMode,
  actor: string,
): Promise<ProviderRow | undefined> {
  const [row] = await db<ProviderRow[]>`
    update deposit_providers set mode = ${mode}::text, updated_at = now(), updated_by = ${actor}::text
    where name = ${name}::text returning name, kind, mode`;
  return row;
}

/** Claims the reference; undefined when it was already taken (the caller reads what is there). */
export async function insertDeposit(
  db: Executor,
  deposit: Omit<DepositRow, 'createdAt'> & {
    journalId: string;
    intentId?: string;
    suspenseReason?: SuspenseReason;
  },
): Promise<string | undefined> {
  const [row] = await db<{ id: string }[]>`
    insert into deposits (id, provider, reference, payload_hash, account_id, asset, amount_minor, journal_id, source,
                          intent_id, suspense_reason)
    values (${deposit.id}::uuid, ${deposit.provider}::text, ${deposit.reference}::text, ${deposit.payloadHash}::text,
            ${deposit.accountId}::uuid, ${deposit.asset}::text, ${deposit.amountMinor}::int8, ${deposit.journalId}::uuid,
            ${deposit.source}::text, ${deposit.intentId ?? null}::uuid, ${deposit.suspenseReason ?? null}::text)
    on conflict (provider, reference) do nothing
    returning id`;
  return row?.id;
}

export async function selectDeposit(
  db: Executor,
  provider: string,
  reference: string,
): Promise<DepositRow | undefined> {
  const [row] = await db<DepositRow[]>`
    select id, provider, reference, payload_hash as "payloadHash", account_id as "accountId", asset,
           amount_minor as "amountMinor", source, created_at as "createdAt"
    from deposits where provider = ${provider}::text and reference = ${reference}::text`;
  return row;
}

/** Deposits held in suspense, newest first, after the (createdAt, id) cursor when one is given. */
export async function selectSuspense(
  db: Executor,
  page: { limit: number; before?: { createdAt: Date; id: string } },
): Promise<SuspenseRow[]> {
  const after = page.before
    ? db`and (d.created_at, d.id) < (${page.before.createdAt}::timestamptz, ${page.before.id}::uuid)`
    : db``;
  return db<SuspenseRow[]>`
    select d.id as "depositId", d.provider, d.reference, d.source, d.suspense_reason as reason, d.asset,
           d.amount_minor as "amountMinor", s.precision, d.intent_id as "intentId", d.created_at as "createdAt"
    from deposits d join assets s on s.code = d.asset
    where d.suspense_reason is not null ${after}
    order by d.created_at desc, d.id desc
    limit ${page.limit}::int`;
}

export async function countDepositsTo(db: Executor, accountId: string): Promise<number> {
  const [row] = await db<
    { count: number }[]
  >`select count(*)::int as count from deposits where account_id = ${accountId}::uuid`;
  return row?.count ?? 0;
}

export async function insertInboundWebhook(
  db: Executor,
  webhook: {
    id: string;
    provider: string;
    body: string;
    state: InboundWebhookRow['state'];
    outcome: string | null;
    error: string | null;
  },
): Promise<void> {
  await db`
    insert into inbound_webhooks (id, provider, body, state, outcome, error)
    values (${webhook.id}::uuid, ${webhook.provider}::text, ${webhook.body}::text, ${webhook.state}::text,
            ${webhook.outcome}::text, ${webhook.error}::text)`;
}

const webhookColumns = (db: Executor) => db`
  id, provider, body, state, outcome, error, attempts, received_at as "receivedAt"`;

export async function selectInboundWebhook(db: Executor, id: string): Promise<InboundWebhookRow | undefined> {
  const [row] = await db<
    InboundWebhookRow[]
  >`select ${webhookColumns(db)} from inbound_webhooks where id = ${id}::uuid`;
  return row;
}

/** Locks a dead-lettered webhook for replay; undefined when it is not (or no longer) dead-lettered. */
export async function claimDeadLetter(db: Executor, id: string): Promise<InboundWebhookRow | undefined> {
  const [row] = await db<InboundWebhookRow[]>`
    select ${webhookColumns(db)} from inbound_webhooks where id = ${id}::uuid and state = 'dead_letter' for update`;
  return row;
}

export async function selectDeadLetters(db: Executor, limit: number): Promise<InboundWebhookRow[]> {
  return db<InboundWebhookRow[]>`
    select ${webhookColumns(db)} from inbound_webhooks where state = 'dead_letter' order by received_at limit ${limit}::int`;
}

export async function countDeadLetters(db: Executor): Promise<number> {
  const [row] = await db<
    { count: number }[]
  >`select count(*)::int as count from inbound_webhooks where state = 'dead_letter'`;
  return row?.count ?? 0;
}

export async function updateInboundWebhook(
  db: Executor,
  id: string,
  change: { state: InboundWebhookRow['state']; outcome: string | null; error: string | null },
): Promise<void> {
  await db`
    update inbound_webhooks
    set state = ${change.state}::text, outcome = ${change.outcome}::text, error = ${change.error}::text,
        attempts = attempts + 1, updated_at = now()
    where id = ${id}::uuid`;
}

export async function recordReplayFailure(db: Executor, id: string, error: string): Promise<void> {
  await db`
    update inbound_webhooks set error = ${error}::text, attempts = attempts + 1, updated_at = now()
    where id = ${id}::uuid and state = 'dead_letter'`;
}

export async function insertSecurityEvent(
  db: Executor,
  event: { kind: string; source: string; detail: unknown },
): Promise<void> {
  await db`
    insert into security_events (kind, source, detail)
    values (${event.kind}::text, ${event.source}::text, ${db.json(event.detail as Parameters<typeof db.json>[0])}::jsonb)`;
}

export type ProofVerdictName = 'pending' | 'credited' | 'already_credited' | 'suspicious';

export async function insertProof(
  db: Executor,
  proof: {
    id: string;
    transactionHash: string;
    accountId: string;
    asset: string;
    claimedAmountMinor: bigint | null;
    verdict: ProofVerdictName;
    reason: string | null;
    depositId: string | null;
    submittedBy: string;
    submittedAt: Date;
  },
): Promise<void> {
  await db`
    insert into payment_proofs (id, transaction_hash, account_id, asset, claimed_amount_minor, verdict, reason,
                                deposit_id, submitted_by, created_at, decided_at)
    values (${proof.id}::uuid, ${proof.transactionHash}::text, ${proof.accountId}::uuid, ${proof.asset}::text,
            ${proof.claimedAmountMinor}::bigint, ${proof.verdict}::text, ${proof.reason}::text,
            ${proof.depositId}::uuid, ${proof.submittedBy}::text, ${proof.submittedAt}::timestamptz,
            case when ${proof.verdict}::text = 'pending' then null else now() end)`;
}

export type PendingProof = {
  id: string;
  transactionHash: string;
  accountId: string;
  asset: string;
  claimedAmountMinor: bigint | null;
  submittedBy: string;
  submittedAt: Date;
};

/** A proof still waiting for its verdict; `forUpdate` holds it until the caller's transaction ends. */
export async function selectPendingProof(
  db: Executor,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<PendingProof | undefined> {
  const lock = options.forUpdate ? db`for update` : db``;
  const [row] = await db<PendingProof[]>`
    select id, transaction_hash as "transactionHash", account_id as "accountId", asset,
           claimed_amount_minor as "claimedAmountMinor", submitted_by as "submittedBy", created_at as "submittedAt"
    from payment_proofs where id = ${id}::uuid and verdict = 'pending' ${lock}`;
  return row;
}

/** Gives a pending proof its verdict; false when it was not pending any more. */
export async function decideProof(
  db: Executor,
  id: string,
  decision: {
    verdict: Exclude<ProofVerdictName, 'pending'>;
    reason: string | null;
    depositId: string | null;
  },
): Promise<boolean> {
  const rows = await db`
    update payment_proofs
    set verdict = ${decision.verdict}::text, reason = ${decision.reason}::text,
        deposit_id = ${decision.depositId}::uuid, decided_at = now()
    where id = ${id}::uuid and verdict = 'pending'`;
  return rows.count === 1;
}

/** Pending proofs: how many, and the age of the oldest in seconds (0 when none). */
export async function selectPendingProofsSummary(
  db: Executor,
): Promise<{ pending: number; oldestAgeSeconds: number }> {
  const [row] = await db<{ pending: number; oldestAgeSeconds: number }[]>`
    select count(*)::int as pending,
           coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as "oldestAgeSeconds"
    from payment_proofs where verdict = 'pending'`;
  return row ?? { pending: 0, oldestAgeSeconds: 0 };
}
