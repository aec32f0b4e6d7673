import { selectAssetPrecision } from '../ledger/data.ts';
import { formatAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Tx } from '../platform/db/types.ts';
import { type HorizonPayment, horizonPageLimitMax, readPaymentsPage } from '../stellar/horizon-read.ts';
import { stellarDecimals } from '../stellar/units.ts';
import {
  assetCodeOf,
  fromStroops,
  operationIndexOfToken,
  parseStroops,
  tokenAfterLedger,
  toStroops,
} from './chain-units.ts';
import {
  type ChainAccess,
  type Detector,
  type DetectorContext,
  loadCheckpoint,
  requireChain,
  storeCheckpoint,
} from './context.ts';
import {
  type AttributedPayment,
  insertPayoutPayments,
  type PayoutPayment,
  selectChannelAccountIds,
  selectLatestSucceededAt,
  selectPayoutPayments,
  selectPayoutsOfTransactions,
  selectPayoutsSucceededTwice,
  selectSettledLookalike,
  type TransactionPayout,
} from './data.ts';
import { type Observation, recordFindings } from './findings.ts';

/**
 * outgoing_payments: follows the hot wallet's payments on Horizon from a persisted paging token
 * (the deposit watcher's paging and failover, src/stellar/horizon-read.ts) and explains every
 * payment that leaves it:
 * - its transaction (outer or inner hash of a fee bump) is a settlement attempt and the operation
 *   pays one of that attempt's payouts: it is that payout's payment;
 * - a create_account funding one of our channel accounts: explained, and remembered as money
 *   that left without a ledger posting (chain_balance accounts for it), like the fees the hot
 *   wallet pays as fee-bump sponsor;
 * - any other create_account is an XLM payment to the account it creates: the engine pays XLM to
 *   an account that does not exist yet that way, and it is explained as a payment is.
 * A payout paid by more than one on-chain payment, or a payment no attempt explains that pays the
 * same destination, asset and amount as a settled payout, is a `double_payout` (subject: the
 * payout). Any other payment out is an `unknown_outgoing_payment` (subject: its paging token): a
 * possible key compromise, it pages. From the database alone, a payout with two succeeded
 * attempts is a double payout too. Neither kind resolves by itself: the money has left.
 */

/** Pages of 200 per scheduled run before the run reports itself behind. */
export const outgoingPagesPerRunMax = 50;

type OutgoingState = {
  /** Stroops per asset that left the hot wallet without a ledger posting (channel funding, fees). */
  unbookedStroops?: Record<string, string>;
  /** Transaction of the previous record: a transaction's fee is counted once, on its first record. */
  lastTransactionHash?: string | null;
  /** Latest succeeded-attempt time already examined for payouts that succeeded twice. */
  succeededSince?: string | null;
  /** Set once a run has read up to the newest payment: chain_balance waits for it before its baseline. */
  caughtUpAt?: string | null;
};

export function unbookedStroopsOf(state: Record<string, unknown>): Map<string, bigint> {
  const carried = (state as OutgoingState).unbookedStroops ?? {};
  return new Map(Object.entries(carried).map(([asset, stroops]) => [asset, BigInt(stroops)]));
}

export function outgoingCaughtUp(state: Record<string, unknown>): boolean {
  return typeof (state as OutgoingState).caughtUpAt === 'string';
}

type Outgoing =
  | { kind: 'payment'; destination: string; asset: string; amountStroops: bigint }
  | { kind: 'create_account'; destination: string; amountStroops: bigint }
  | { kind: 'other'; destination: string | undefined; asset: string | undefined; amountStroops: bigint };

/** What left the hot wallet in this record; undefined when nothing did. */
function outgoingOf(record: HorizonPayment, hot: string): Outgoing | undefined {
  if (!record.transaction_successful) return undefined;
  const amountStroops = parseStroops(record.amount ?? record.starting_balance) ?? 0n;
  switch (record.type) {
    case 'payment': {
      const destination = record.to_muxed ?? record.to ?? '';
      // A payment to itself moves nothing.
      if (record.from !== hot || record.to === hot) return undefined;
      return { kind: 'payment', destination, asset: assetCodeOf(record), amountStroops };
    }
    case 'create_account':
      return record.funder === hot
        ? { kind: 'create_account', destination: record.account ?? '', amountStroops }
        : undefined;
    case 'account_merge':
      return record.account === hot
        ? { kind: 'other', destination: record.into, asset: 'XLM', amountStroops }
        : undefined;
    default:
      // Path payments and anything newer: settledesk never sends them, so one from us is unexplained.
      return record.from === hot || record.source_account === hot
        ? {
            kind: 'other',
            destination: record.to_muxed ?? record.to,
            asset: record.asset_type ? assetCodeOf(record) : undefined,
            amountStroops,
          }
        : undefined;
  }
}

/** What a payout would have paid: a payment, or the XLM an account creation starts the account with. */
function paymentOf(outgoing: Outgoing): Extract<Outgoing, { kind: 'payment' }> | undefined {
  if (outgoing.kind === 'payment') return outgoing;
  if (outgoing.kind === 'create_account') {
    return {
      kind: 'payment',
      destination: outgoing.destination,
      asset: 'XLM',
      amountStroops: outgoing.amountStroops,
    };
  }
  return undefined;
}

function transactionHashes(record: HorizonPayment): string[] {
  const hashes = [
    record.transaction_hash,
    record.transaction?.hash,
    record.transaction?.inner_transaction?.hash,
    record.transaction?.fee_bump_transaction?.hash,
  ];
  return [...new Set(hashes.filter((hash): hash is string => typeof hash === 'string'))];
}

function paymentEvidence(record: HorizonPayment, outgoing: Outgoing): Record<string, unknown> {
  return {
    pagingToken: record.paging_token,
    transactionHash: record.transaction_hash,
    type: record.type,
    destination: outgoing.destination ?? null,
    asset: 'asset' in outgoing ? (outgoing.asset ?? null) : 'XLM',
    amount: formatAmount(outgoing.amountStroops, stellarDecimals),
    at: record.created_at ?? null,
  };
}

/** The payout this payment of one of our transactions pays, checked field by field. */
function payoutPaid(
  record: HorizonPayment,
  payment: Extract<Outgoing, { kind: 'payment' }>,
  carried: readonly TransactionPayout[],
): TransactionPayout | undefined {
  const pays = (payout: TransactionPayout) =>
    payout.destination === payment.destination &&
    payout.asset === payment.asset &&
    toStroops(payout.amountMinor, payout.precision) === payment.amountStroops;
  const index = operationIndexOfToken(BigInt(record.paging_token));
  const atIndex = carried.find((payout) => payout.operationIndex === index);
  return atIndex && pays(atIndex) ? atIndex : carried.find(pays);
}

type PageResult = { observations: Observation[]; attributed: PayoutPayment[]; unbooked: Map<string, bigint> };

async function examinePage(
  tx: Tx,
  records: readonly HorizonPayment[],
  chain: ChainAccess,
  state: OutgoingState,
  channels: ReadonlySet<string>,
): Promise<PageResult> {
  const unbooked = unbookedStroopsOf(state as Record<string, unknown>);
  const addUnbooked = (asset: string, stroops: bigint) =>
    unbooked.set(asset, (unbooked.get(asset) ?? 0n) + stroops);
  const hashes = records.flatMap(transactionHashes);
  const carried = hashes.length === 0 ? [] : await selectPayoutsOfTransactions(tx, hashes);
  const byHash = new Map<string, TransactionPayout[]>();
  for (const row of carried) byHash.set(row.hash, [...(byHash.get(row.hash) ?? []), row]);
  const observations: Observation[] = [];
  const attributed: PayoutPayment[] = [];
  for (const record of records) {
    if (
      record.transaction?.fee_account === chain.hotWallet &&
      record.transaction_hash !== state.lastTransactionHash
    ) {
      addUnbooked('XLM', BigInt(record.transaction?.fee_charged ?? '0'));
    }
    state.lastTransactionHash = record.transaction_hash;
    const outgoing = outgoingOf(record, chain.hotWallet);
    if (outgoing === undefined) continue;
    const token = BigInt(record.paging_token);
    if (outgoing.kind === 'create_account' && channels.has(outgoing.destination)) {
      addUnbooked('XLM', outgoing.amountStroops);
      continue;
    }
    const ours = transactionHashes(record).flatMap((hash) => byHash.get(hash) ?? []);
    const paid = paymentOf(outgoing);
    if (paid !== undefined) {
      const payout = ours.length > 0 ? payoutPaid(record, paid, ours) : undefined;
      const transactionHash = ours[0]?.hash ?? record.transaction_hash;
      if (payout) {
        attributed.push({
          pagingToken: token,
          payoutId: payout.payoutId,
          transactionHash,
          attribution: 'attempt',
        });
        continue;
      }
      const lookalike = ours.length === 0 ? await lookalikeOf(tx, paid) : undefined;
      if (lookalike) {
        attributed.push({
          pagingToken: token,
          payoutId: lookalike,
          transactionHash,
          attribution: 'likeness',
        });
        continue;
      }
    }
    observations.push({
      kind: 'unknown_outgoing_payment',
      subject: record.paging_token,
      evidence: {
        ...paymentEvidence(record, outgoing),
        explanation:
          ours.length > 0
            ? 'in a settlement transaction of ours, but no payout of it matches this payment'
            : 'no payout, settlement attempt or channel account explains it',
      },
    });
  }
  return { observations, attributed, unbooked };
}

async function lookalikeOf(
  db: Executor,
  payment: Extract<Outgoing, { kind: 'payment' }>,
): Promise<string | undefined> {
  const precision = await selectAssetPrecision(db, payment.asset);
  if (precision === undefined) return undefined;
  const amountMinor = fromStroops(payment.amountStroops, precision);
  if (amountMinor === undefined) return undefined;
  return selectSettledLookalike(db, { destination: payment.destination, asset: payment.asset, amountMinor });
}

/** Double payouts among the payouts these payments were attributed to: more than one payment each. */
async function doublePayouts(tx: Tx, payoutIds: readonly string[]): Promise<Observation[]> {
  if (payoutIds.length === 0) return [];
  const payments = await selectPayoutPayments(tx, payoutIds);
  const byPayout = new Map<string, AttributedPayment[]>();
  for (const payment of payments)
    byPayout.set(payment.payoutId, [...(byPayout.get(payment.payoutId) ?? []), payment]);
  return [...byPayout.entries()]
    .filter(([, paid]) => paid.length > 1)
    .map(([payoutId, paid]) => ({
      kind: 'double_payout' as const,
      subject: payoutId,
      evidence: {
        payoutId,
        destination: paid[0]?.destination ?? null,
        asset: paid[0]?.asset ?? null,
        amount: paid[0] ? formatAmount(paid[0].amountMinor, paid[0].precision) : null,
        payoutState: paid[0]?.state ?? null,
        payments: paid.map((payment) => ({
          pagingToken: payment.pagingToken.toString(),
          transactionHash: payment.transactionHash,
          attribution: payment.attribution,
        })),
      },
    }));
}

/** From the database alone: payouts with more than one succeeded attempt, among recent successes. */
async function succeededTwice(context: DetectorContext, state: OutgoingState): Promise<void> {
  const latest = await selectLatestSucceededAt(context.sql);
  if (latest === null) return;
  const since = state.succeededSince ? new Date(state.succeededSince) : new Date(0);
  const lookback = new Date(since.getTime() - context.settings.lateCommitSecondsMax * 1_000);
  const change = await withTransaction(context.sql, async (tx) => {
    const twice = await selectPayoutsSucceededTwice(tx, context.full ? new Date(0) : lookback);
    return recordFindings(
      tx,
      twice.map((row) => ({
        kind: 'double_payout',
        subject: row.payoutId,
        evidence: { payoutId: row.payoutId, succeededAttempts: row.hashes },
      })),
    );
  });
  context.findings.add(change);
  state.succeededSince = latest.toISOString();
}

export const outgoingPaymentsDetector: Detector = {
  name: 'outgoing_payments',
  needsChain: true,
  run: async (context) => {
    const chain = requireChain(context);
    const checkpoint = await loadCheckpoint(context.sql, context);
    let cursor = context.full ? 0n : checkpoint.cursor;
    const state: OutgoingState = context.full
      ? { succeededSince: null }
      : { ...(checkpoint.state as OutgoingState) };
    const channels = new Set(await selectChannelAccountIds(context.sql));
    const start = cursor;
    const pagesMax = context.full ? Number.POSITIVE_INFINITY : outgoingPagesPerRunMax;
    let scanned = 0;
    let complete = false;
    for (let page = 0; page < pagesMax; page += 1) {
      const { root, records } = await readPaymentsPage(
        chain.horizonUrls,
        chain.hotWallet,
        cursor,
        horizonPageLimitMax,
        { includeFailed: true },
      );
      const last = records.at(-1);
      if (last === undefined) {
        complete = true;
        break;
      }
      const change = await withTransaction(context.sql, async (tx) => {
        const examined = await examinePage(tx, records, chain, state, channels);
        if (examined.attributed.length > 0) await insertPayoutPayments(tx, examined.attributed);
        const doubles = await doublePayouts(
          tx,
          examined.attributed.map((payment) => payment.payoutId),
        );
        state.unbookedStroops = Object.fromEntries(
          [...examined.unbooked].map(([asset, stroops]) => [asset, stroops.toString()]),
        );
        const recorded = await recordFindings(tx, [...examined.observations, ...doubles]);
        await storeCheckpoint(tx, context, { cursor: BigInt(last.paging_token), state });
        return recorded;
      });
      context.findings.add(change);
      cursor = BigInt(last.paging_token);
      scanned += records.length;
      const end = tokenAfterLedger(root.history_latest_ledger);
      context.progress(Number((cursor - start) >> 12n), Number((end - start) >> 12n));
      if (records.length < horizonPageLimitMax) {
        complete = true;
        break;
      }
    }
    await succeededTwice(context, state);
    if (complete) state.caughtUpAt = new Date().toISOString();
    await storeCheckpoint(context.sql, context, { cursor, state });
    return { complete, scanned };
  },
};
