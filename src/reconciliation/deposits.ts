import { type Incoming, incomingOf, Unreadable } from '../deposits/incoming.ts';
import { type ProviderPayload, parsePayload } from '../deposits/webhooks.ts';
import { formatAmount, parseAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor } from '../platform/db/types.ts';
import { type HorizonPayment, readPaymentsPage } from '../stellar/horizon-read.ts';
import { assetCodeOf, ledgerOfToken, parseStroops, toStroops } from './chain-units.ts';
import {
  type ChainAccess,
  type Detector,
  type DetectorContext,
  loadCheckpoint,
  requireChain,
  storeCheckpoint,
} from './context.ts';
import {
  countDepositsSince,
  deleteSeen,
  insertSeen,
  type ProviderEvent,
  purgeSeen,
  type ScannedDeposit,
  selectDepositByReference,
  selectEventsOfDeposit,
  selectUnseenDeposits,
  selectUnseenProviderEvents,
} from './data.ts';
import { type Observation, recordFindings } from './findings.ts';

/**
 * deposits: every credited deposit is backed by what it claims to come from.
 * - A provider (webhook) deposit has the provider event that credited it: the inbound webhook
 *   stored, processed or replayed, in the same transaction (so with the same now()), naming the
 *   same reference, account, asset and amount (any account for one held in suspense, which credits
 *   nobody). And every processed provider event has its deposit.
 * - A chain or proof deposit has its payment on chain: its reference is the payment's paging
 *   token, so Horizon's payments of the hot wallet just after token − 1 must start with it, in a
 *   successful transaction, to the hot wallet, in the asset and amount credited.
 * A difference is a `deposit_mismatch` finding (subject: the deposit id, or `webhook:<id>` for an
 * event with no deposit). Each deposit and event is examined once, so findings stay open until a
 * person has dealt with them.
 *
 * Incremental by time: deposits by created_at, events by updated_at (indexed), each scan looking
 * back `lateCommitSecondsMax` for rows whose transaction committed after later ones were seen; a
 * bounded set of items already handled inside that window keeps each examined once. A chain
 * deposit in a ledger the answering Horizon has not ingested yet ends the run's scan there, to be
 * examined on a later run.
 */

/** Rows read per query. */
export const depositBatchMax = 200;
/** Per scheduled run (a full run has no bound): deposits and events examined, chain look-ups made. */
export const depositsPerRunMax = 2_000;
export const chainChecksPerRunMax = 200;

type DepositState = { depositsSince?: string | null; eventsSince?: string | null };

type Verdict = { reason: string; detail?: Record<string, unknown> } | undefined;

function readPayload(body: string): ProviderPayload | undefined {
  try {
    return parsePayload(body);
  } catch {
    return undefined;
  }
}

function matches(deposit: ScannedDeposit, payload: ProviderPayload): boolean {
  const amount = parseAmount(payload.amount, { precision: deposit.precision });
  return (
    (deposit.held || payload.accountId === deposit.accountId) &&
    payload.asset === deposit.asset &&
    amount.ok &&
    amount.minor === deposit.amountMinor
  );
}

async function checkWebhookDeposit(db: Executor, deposit: ScannedDeposit): Promise<Verdict> {
  const events = await selectEventsOfDeposit(db, deposit.id);
  const named = events.filter((event) => readPayload(event.body)?.reference === deposit.reference);
  if (named.length === 0) return { reason: 'no_provider_event' };
  if (named.some((event) => matches(deposit, readPayload(event.body) as ProviderPayload))) return undefined;
  return { reason: 'provider_event_differs', detail: { events: named.map((event) => event.id) } };
}

async function checkChainDeposit(
  chain: ChainAccess,
  deposit: ScannedDeposit,
): Promise<Verdict | 'not_ingested'> {
  if (!/^\d{1,19}$/.test(deposit.reference))
    return { reason: 'payment_not_on_chain', detail: { note: 'reference is not a paging token' } };
  const token = BigInt(deposit.reference);
  const { root, records } = await readPaymentsPage(chain.horizonUrls, chain.hotWallet, token - 1n, 1);
  if (root.history_latest_ledger < ledgerOfToken(token)) return 'not_ingested';
  const [record] = records;
  if (record === undefined || record.paging_token !== deposit.reference || !record.transaction_successful) {
    return { reason: 'payment_not_on_chain' };
  }
  // What the record brought in, as the watcher reads it (a path payment's delivered amount, a merge's balance).
  const incoming = readIncoming(record, chain.hotWallet);
  const paid = {
    type: record.type,
    to: record.to ?? record.into ?? null,
    asset: incoming?.asset ?? (record.asset_type ? assetCodeOf(record) : null),
    amount: incoming?.amount ?? record.amount ?? null,
    transactionHash: record.transaction_hash,
  };
  const same =
    incoming !== undefined &&
    incoming.asset === deposit.asset &&
    parseStroops(incoming.amount) === toStroops(deposit.amountMinor, deposit.precision);
  return same ? undefined : { reason: 'payment_differs', detail: { onChain: paid } };
}

function readIncoming(record: HorizonPayment, hotWallet: string): Incoming | undefined {
  try {
    return incomingOf(record, hotWallet);
  } catch (error) {
    if (error instanceof Unreadable) return undefined;
    throw error;
  }
}

function depositFinding(deposit: ScannedDeposit, verdict: NonNullable<Verdict>): Observation {
  return {
    kind: 'deposit_mismatch',
    subject: deposit.id,
    evidence: {
      depositId: deposit.id,
      provider: deposit.provider,
      reference: deposit.reference,
      source: deposit.source,
      accountId: deposit.accountId,
      asset: deposit.asset,
      amount: formatAmount(deposit.amountMinor, deposit.precision),
      creditedAt: deposit.createdAt.toISOString(),
      reason: verdict.reason,
      ...verdict.detail,
    },
  };
}

async function checkEvent(db: Executor, event: ProviderEvent): Promise<Observation | undefined> {
  const payload = readPayload(event.body);
  const base = { webhookId: event.id, provider: event.provider, state: event.state, outcome: event.outcome };
  if (payload === undefined) {
    return {
      kind: 'deposit_mismatch',
      subject: `webhook:${event.id}`,
      evidence: { ...base, reason: 'provider_event_unreadable' },
    };
  }
  const deposit = await selectDepositByReference(db, event.provider, payload.reference);
  if (deposit === undefined) {
    return {
      kind: 'deposit_mismatch',
      subject: `webhook:${event.id}`,
      evidence: { ...base, reference: payload.reference, reason: 'provider_event_without_deposit' },
    };
  }
  return matches(deposit, payload)
    ? undefined
    : depositFinding(deposit, { reason: 'provider_event_differs', detail: { events: [event.id] } });
}

function windowStart(since: string | null | undefined, context: DetectorContext): Date {
  if (context.full || !since) return new Date(0);
  return new Date(new Date(since).getTime() - context.settings.lateCommitSecondsMax * 1_000);
}

type StreamRun = { scanned: number; complete: boolean; latest: Date | undefined };

async function scanDeposits(context: DetectorContext, state: DepositState): Promise<StreamRun> {
  const chain = requireChain(context);
  const since = windowStart(state.depositsSince, context);
  const perRunMax = context.full ? Number.POSITIVE_INFINITY : depositsPerRunMax;
  const total = context.full ? await countDepositsSince(context.sql, since) : 0;
  let scanned = 0;
  let chainChecks = 0;
  let latest: Date | undefined;
  while (scanned < perRunMax) {
    const batch = await selectUnseenDeposits(context.sql, since, depositBatchMax);
    const handled: ScannedDeposit[] = [];
    const observations: Observation[] = [];
    let stopped = false;
    for (const deposit of batch) {
      let verdict: Verdict;
      if (deposit.source === 'webhook') {
        verdict = await checkWebhookDeposit(context.sql, deposit);
      } else {
        if (!context.full && chainChecks >= chainChecksPerRunMax) {
          stopped = true;
          break;
        }
        chainChecks += 1;
        const checked = await checkChainDeposit(chain, deposit);
        if (checked === 'not_ingested') {
          stopped = true;
          break;
        }
        verdict = checked;
      }
      if (verdict) observations.push(depositFinding(deposit, verdict));
      handled.push(deposit);
    }
    if (handled.length > 0) {
      const change = await withTransaction(context.sql, async (tx) => {
        await insertSeen(
          tx,
          'deposits',
          handled.map((deposit) => ({ item: `deposit:${deposit.id}`, at: deposit.createdAt })),
        );
        return recordFindings(tx, observations);
      });
      context.findings.add(change);
      const newest = handled.at(-1)?.createdAt;
      if (newest && (!latest || newest > latest)) latest = newest;
    }
    scanned += handled.length;
    context.progress(scanned, Math.max(total, scanned));
    if (stopped) return { scanned, complete: false, latest };
    if (batch.length < depositBatchMax) return { scanned, complete: true, latest };
  }
  return { scanned, complete: false, latest };
}

async function scanEvents(context: DetectorContext, state: DepositState): Promise<StreamRun> {
  const since = windowStart(state.eventsSince, context);
  const perRunMax = context.full ? Number.POSITIVE_INFINITY : depositsPerRunMax;
  let scanned = 0;
  let latest: Date | undefined;
  while (scanned < perRunMax) {
    const batch = await selectUnseenProviderEvents(context.sql, since, depositBatchMax);
    if (batch.length === 0) return { scanned, complete: true, latest };
    const change = await withTransaction(context.sql, async (tx) => {
      const observations: Observation[] = [];
      for (const event of batch) {
        const observed = await checkEvent(tx, event);
        if (observed) observations.push(observed);
      }
      await insertSeen(
        tx,
        'deposits',
        batch.map((event) => ({ item: `event:${event.id}`, at: event.updatedAt })),
      );
      return recordFindings(tx, observations);
    });
    context.findings.add(change);
    scanned += batch.length;
    const newest = batch.at(-1)?.updatedAt;
    if (newest && (!latest || newest > latest)) latest = newest;
    if (batch.length < depositBatchMax) return { scanned, complete: true, latest };
  }
  return { scanned, complete: false, latest };
}

function later(current: string | null | undefined, seen: Date | undefined): string | null {
  if (seen === undefined) return current ?? null;
  return current && new Date(current) > seen ? current : seen.toISOString();
}

export const depositsDetector: Detector = {
  name: 'deposits',
  needsChain: true,
  run: async (context) => {
    const checkpoint = await loadCheckpoint(context.sql, context);
    const state: DepositState = context.full ? {} : { ...(checkpoint.state as DepositState) };
    if (context.full) await deleteSeen(context.sql, 'deposits');
    const deposits = await scanDeposits(context, state);
    const events = await scanEvents(context, state);
    state.depositsSince = later(state.depositsSince, deposits.latest);
    state.eventsSince = later(state.eventsSince, events.latest);
    const oldest = [state.depositsSince, state.eventsSince]
      .filter((at): at is string => typeof at === 'string')
      .sort()[0];
    await withTransaction(context.sql, async (tx) => {
      if (oldest !== undefined) {
        const windowSeconds = context.settings.lateCommitSecondsMax;
        await purgeSeen(tx, 'deposits', new Date(new Date(oldest).getTime() - windowSeconds * 1_000));
      }
      await storeCheckpoint(tx, context, { cursor: checkpoint.cursor, state });
    });
    return { complete: deposits.complete && events.complete, scanned: deposits.scanned + events.scanned };
  },
};
