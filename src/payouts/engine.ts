import { randomUUID } from 'node:crypto';
import type { Keypair } from '@stellar/stellar-sdk';
import { isPayoutSubmissionFrozen } from '../controls/service.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import { OperatingError } from '../platform/errors.ts';
import type { Logger } from '../platform/logging.ts';
import {
  type AttemptRow,
  claimChannel,
  countLiveAttempts,
  insertAttempt,
  markAttemptChecked,
  markAttemptRefused,
  markAttemptSubmitted,
  occupyChannel,
  releaseChannel,
  resolveAttempt,
  selectAttemptPayouts,
  selectLiveAttempts,
  storeFeeBump,
  upsertChannels,
} from './attempts-data.ts';
import { buildFeeBump, buildSettlement, chooseBatch, operationCount } from './builder.ts';
import {
  type ChainLedger,
  type DestinationAccount,
  type LookupOutcome,
  type ResultCodes,
  type SettlementChain,
  type SubmitOutcome,
  windowClosed,
} from './chain.ts';
import {
  claimReadyPayouts,
  countPayoutsInState,
  countReadyPayouts,
  type PayoutRow,
  selectPayoutsByIds,
  transitionPayouts,
} from './data.ts';
import { baseAccountOf } from './destinations.ts';
import {
  manualReviewQueueSize,
  manualReviewTransitions,
  payoutOperationsSubmitted,
  payoutsWaitingForNetwork,
  payoutTransitions,
  settlementAttempts,
} from './metrics.ts';
import { refundPayouts, settlePayouts } from './service.ts';

/**
 * The settlement engine. Invariants, each enforced by the database where it can be:
 * - the signed envelope, its hash and its window are committed before the first submission, so a
 *   crash at any moment leaves something to look up;
 * - a payout has at most one live attempt (unique index) and a channel carries at most one;
 * - an attempt is only replaced after a closed ledger proves it can never apply (`windowClosed`
 *   on the answer of a path that had ingested that ledger) or after the network said it failed;
 * - resubmitting is always the same envelope (same hash: it applies at most once);
 * - every outcome is applied by a guarded update, so two workers resolving one attempt move the
 *   money once.
 */

export type EngineOptions = {
  hotWallet: Keypair;
  channels: readonly Keypair[];
  networkPassphrase: string;
  batchSizeMax: number;
  windowSeconds: number;
  windowLedgers: number;
  feeCapStroops: bigint;
  resubmitAfterMs: number;
  /** After the window's end time, how long a path may keep answering "not found, cannot prove" before manual review. */
  manualReviewAfterMs: number;
  logger: Logger;
  clock?: () => number;
};

export const engineActor = 'settlement-engine';

/**
 * Operation codes that mean "this payment can never succeed as asked": the payout fails and is
 * refunded. `op_already_exists` and `op_low_reserve` are an account creation's: the account
 * appeared after the build read it, or the amount is below the network's minimum balance.
 */
const terminalOperationCodes = new Set([
  'op_no_destination',
  'op_no_trust',
  'op_line_full',
  'op_not_authorized',
  'op_malformed',
  'op_no_issuer',
  'op_already_exists',
  'op_low_reserve',
]);

/** Destination accounts read at once while a batch is built. */
export const destinationReadsConcurrencyMax = 8;
/**
 * Destinations this engine has seen on chain, remembered so that a busy engine reads each one once,
 * not once per batch: with the reads, the 1 s-ledger payouts benchmark used 0.91 of ledger capacity
 * (13.6 s for 10,000 payouts) against 1.00 (11.3 s) without them. An account can only vanish by a
 * merge; its payment then fails `op_no_destination`, is refunded once, and the account is forgotten.
 */
export const knownAccountsMax = 10_000;

/** Refusals of the envelope itself (signatures, shape): no copy of it can ever apply. */
const envelopeRefusals = new Set([
  'tx_bad_auth',
  'tx_bad_auth_extra',
  'tx_malformed',
  'tx_missing_operation',
  'tx_not_supported',
]);

export type RoundReport = { resolved: number; built: number; waiting: number; pending: boolean };

export class SettlementEngine {
  readonly #sql: Sql;
  readonly #chain: SettlementChain;
  readonly #options: EngineOptions;
  readonly #channels: Map<string, Keypair>;
  readonly #clock: () => number;
  /** Insertion order is age: the oldest is dropped first when the set is full. */
  readonly #knownAccounts = new Set<string>();

  constructor(sql: Sql, chain: SettlementChain, options: EngineOptions) {
    this.#sql = sql;
    this.#chain = chain;
    this.#options = options;
    this.#channels = new Map(options.channels.map((channel) => [channel.publicKey(), channel]));
    this.#clock = options.clock ?? Date.now;
  }

  async registerChannels(): Promise<void> {
    await upsertChannels(this.#sql, [...this.#channels.keys()]);
  }

  /** One pass: settle what is in flight, then put free channels to work. Safe to run anywhere, any time. */
  async runRound(): Promise<RoundReport> {
    const frozen = await isPayoutSubmissionFrozen(this.#sql);
    const live = await selectLiveAttempts(this.#sql, this.#channels.size * 2 + 10);
    // One fee reading per round, and only if some attempt is sent again.
    let bid: Promise<bigint> | undefined;
    const bidNow = () => {
      bid ??= this.#chain.feePerOperation(this.#options.feeCapStroops);
      return bid;
    };
    const checks = await Promise.all(live.map((attempt) => this.#check(attempt, frozen, bidNow)));
    let waiting = checks.reduce((sum, check) => sum + check.waiting, 0);
    let built = 0;
    if (!frozen) {
      const building = await this.#buildAndSubmit();
      built = building.built;
      waiting += building.waitingForNetwork;
    }
    const [liveLeft, ready, review] = await Promise.all([
      countLiveAttempts(this.#sql),
      countReadyPayouts(this.#sql),
      countPayoutsInState(this.#sql, 'manual_review'),
    ]);
    manualReviewQueueSize.set(review);
    payoutsWaitingForNetwork.set(waiting);
    return {
      resolved: checks.filter((check) => check.resolved).length,
      built,
      waiting,
      pending: liveLeft + ready > 0,
    };
  }

  async #check(
    attempt: AttemptRow,
    frozen: boolean,
    bidNow: () => Promise<bigint>,
  ): Promise<{ resolved: boolean; waiting: number }> {
    const lookup = await this.#chain.lookup(attempt.hash);
    if (lookup.kind === 'success' || lookup.kind === 'failed') {
      return { resolved: await this.#finishApplied(attempt, lookup), waiting: 0 };
    }
    if (lookup.kind === 'unknown') {
      await markAttemptChecked(this.#sql, attempt.id);
      return { resolved: false, waiting: (await selectAttemptPayouts(this.#sql, attempt.id)).length };
    }
    const window = { ...attempt, firstLedger: attempt.maxLedger - this.#options.windowLedgers };
    if (windowClosed(window, lookup.latest)) {
      return { resolved: await this.#expire(attempt, lookup.latest), waiting: 0 };
    }
    const nowMs = this.#clock();
    if (nowMs > Number(attempt.maxTime) * 1_000 + this.#options.manualReviewAfterMs) {
      return { resolved: await this.#abandon(attempt, lookup.latest), waiting: 0 };
    }
    const lastSentMs = attempt.lastSubmittedAt?.getTime() ?? 0;
    if (!frozen && (attempt.state === 'built' || nowMs - lastSentMs >= this.#options.resubmitAfterMs)) {
      return {
        resolved: await this.#submit(attempt, await this.#envelopeToSend(attempt, await bidNow())),
        waiting: 0,
      };
    }
    await markAttemptChecked(this.#sql, attempt.id);
    return { resolved: false, waiting: 0 };
  }

  /**
   * What to send again: when the network now asks more per operation than this transaction bids
   * (a surge), a fee bump of it paid by the hot wallet, stored first. The inner transaction, its
   * hash and its window are unchanged, so it still applies at most once.
   */
  async #envelopeToSend(attempt: AttemptRow, bid: bigint): Promise<string> {
    const operations = BigInt(operationCount(attempt.envelopeXdr, this.#options.networkPassphrase));
    const paidPerOperation =
      attempt.feeBumpStroops === null
        ? attempt.feeStroops / operations
        : attempt.feeBumpStroops / (operations + 1n);
    if (bid <= paidPerOperation) return attempt.feeBumpEnvelopeXdr ?? attempt.envelopeXdr;
    const bump = buildFeeBump({
      hotWallet: this.#options.hotWallet,
      envelopeXdr: attempt.envelopeXdr,
      feePerOperationStroops: bid,
      networkPassphrase: this.#options.networkPassphrase,
    });
    if (!(await storeFeeBump(this.#sql, attempt.id, bump.envelopeXdr, bump.feeStroops))) {
      return attempt.feeBumpEnvelopeXdr ?? attempt.envelopeXdr;
    }
    this.#options.logger.info(
      { attemptId: attempt.id, bidStroops: bid.toString() },
      'fee bump for a surging network',
    );
    return bump.envelopeXdr;
  }

  /** Sends the stored envelope (first time or again: same hash) and applies a definite answer. */
  async #submit(attempt: AttemptRow, envelopeXdr = attempt.envelopeXdr): Promise<boolean> {
    await markAttemptSubmitted(this.#sql, attempt.id);
    const outcome = await this.#chain.submit(envelopeXdr);
    return this.#afterSubmit(attempt, outcome);
  }

  async #afterSubmit(attempt: AttemptRow, outcome: SubmitOutcome): Promise<boolean> {
    switch (outcome.kind) {
      case 'success':
      case 'failed':
        return this.#finishApplied(attempt, outcome);
      case 'rejected':
        // Only a refusal of the envelope itself proves that no copy of it can ever apply. Any
        // other refusal (tx_bad_seq after an earlier copy applied, a fee or a time bound that
        // another copy met) proves nothing: the window decides.
        if (envelopeRefusals.has(outcome.codes.transaction))
          return this.#finishRejected(attempt, outcome.codes);
        this.#options.logger.warn(
          { attemptId: attempt.id, codes: outcome.codes },
          'submission refused; resolving by hash',
        );
        await markAttemptRefused(this.#sql, attempt.id, `refused: ${outcome.codes.transaction}`);
        return false;
      case 'ambiguous':
      case 'unavailable':
        this.#options.logger.warn(
          { attemptId: attempt.id, hash: attempt.hash, reason: outcome.reason },
          `submission ${outcome.kind}`,
        );
        return false;
    }
  }

  async #finishApplied(
    attempt: AttemptRow,
    outcome: Extract<LookupOutcome, { kind: 'success' | 'failed' }>,
  ): Promise<boolean> {
    const won = await withTransaction(this.#sql, async (tx) => {
      const resolved = await resolveAttempt(tx, attempt.id, {
        state: outcome.kind === 'success' ? 'succeeded' : 'failed',
        reason: outcome.kind === 'success' ? 'applied' : `applied and failed: ${outcome.codes.transaction}`,
        resultCodes: outcome.kind === 'failed' ? outcome.codes : undefined,
        ledger: outcome.ledger,
      });
      if (!resolved) return false;
      // Applied either way: the channel's sequence number is consumed.
      await releaseChannel(tx, attempt.channelAccountId, attempt.id, attempt.sourceSequence + 1n);
      if (outcome.kind === 'success') await this.#settle(tx, attempt);
      else await this.#splitFailure(tx, attempt, outcome.codes);
      return true;
    });
    if (won) {
      settlementAttempts.inc({ outcome: outcome.kind === 'success' ? 'succeeded' : 'failed' });
      // One line per outcome, so a payout's settlement can be found in the logs by its hash.
      this.#options.logger.info(
        { attemptId: attempt.id, hash: attempt.hash, ledger: outcome.ledger, outcome: outcome.kind },
        outcome.kind === 'success'
          ? 'settlement transaction applied'
          : 'settlement transaction applied and failed',
      );
    }
    return won;
  }

  async #settle(tx: Tx, attempt: AttemptRow): Promise<void> {
    const payouts = await selectPayoutsByIds(tx, await this.#payoutIds(tx, attempt));
    const moved = await settlePayouts(tx, payouts, 'attempt_succeeded', {
      actor: engineActor,
      attemptId: attempt.id,
      reference: attempt.id,
    });
    payoutTransitions.inc({ transition: 'attempt_succeeded' }, moved.length);
  }

  /**
   * A failed transaction moved no money. Payouts whose own operation can never succeed fail and are
   * refunded; the others were only held back by it and go back to the queue for a new batch. The
   * requeue comes first and the refunds lock their accounts all at once (the global lock order,
   * src/ledger/service.ts lockAccounts): payouts, then accounts, then inserts.
   */
  async #splitFailure(tx: Tx, attempt: AttemptRow, codes: ResultCodes): Promise<void> {
    const links = await selectAttemptPayouts(tx, attempt.id);
    const payouts = await selectPayoutsByIds(
      tx,
      links.map((link) => link.payoutId),
    );
    const refunds: { payout: PayoutRow; reason: string }[] = [];
    const retry: string[] = [];
    for (const link of links) {
      const payout = payouts.find((candidate) => candidate.id === link.payoutId);
      const code = codes.operations[link.operationIndex];
      if (
        payout &&
        codes.transaction === 'tx_failed' &&
        code !== undefined &&
        terminalOperationCodes.has(code)
      ) {
        refunds.push({ payout, reason: code });
        if (code === 'op_no_destination') this.#knownAccounts.delete(baseAccountOf(payout.destination));
      } else {
        retry.push(link.payoutId);
      }
    }
    await this.#retry(
      tx,
      attempt,
      retry,
      `transaction failed: ${codes.transaction} ${codes.operations.join(',')}`,
    );
    const moved = await refundPayouts(tx, refunds, 'operation_failed', {
      actor: engineActor,
      attemptId: attempt.id,
    });
    payoutTransitions.inc({ transition: 'operation_failed' }, moved.length);
  }

  async #finishRejected(attempt: AttemptRow, codes: ResultCodes): Promise<boolean> {
    return withTransaction(this.#sql, async (tx) => {
      const resolved = await resolveAttempt(tx, attempt.id, {
        state: 'failed',
        reason: `refused at admission: ${codes.transaction}`,
        resultCodes: codes,
      });
      if (!resolved) return false;
      // Never applied: its sequence number is still the channel's next one.
      await releaseChannel(tx, attempt.channelAccountId, attempt.id, attempt.sourceSequence);
      await this.#retry(tx, attempt, await this.#payoutIds(tx, attempt), `refused: ${codes.transaction}`);
      this.#options.logger.error(
        { attemptId: attempt.id, codes },
        'settlement transaction refused by the network',
      );
      settlementAttempts.inc({ outcome: 'failed' });
      return true;
    });
  }

  async #expire(attempt: AttemptRow, latest: ChainLedger): Promise<boolean> {
    const won = await withTransaction(this.#sql, async (tx) => {
      const reason = `not found after ledger ${latest.sequence} closed past the window`;
      if (!(await resolveAttempt(tx, attempt.id, { state: 'expired', reason }))) return false;
      // The sequence number may have been refused as stale: ask the network next time.
      await releaseChannel(tx, attempt.channelAccountId, attempt.id, null);
      await this.#retry(tx, attempt, await this.#payoutIds(tx, attempt), reason);
      return true;
    });
    if (won) settlementAttempts.inc({ outcome: 'expired' });
    return won;
  }

  /** The outcome cannot be determined in bounded time: people decide, under the two-person rule. */
  async #abandon(attempt: AttemptRow, latest: ChainLedger): Promise<boolean> {
    const moved = await withTransaction(this.#sql, async (tx) => {
      const reason = `not found, and no path proves the window closed (latest ledger ${latest.sequence})`;
      if (!(await resolveAttempt(tx, attempt.id, { state: 'abandoned', reason }))) return [];
      await releaseChannel(tx, attempt.channelAccountId, attempt.id, null);
      return transitionPayouts(tx, await this.#payoutIds(tx, attempt), 'outcome_unknown', {
        actor: engineActor,
        attemptId: attempt.id,
        reason,
      });
    });
    if (moved.length > 0) {
      settlementAttempts.inc({ outcome: 'abandoned' });
      manualReviewTransitions.inc({ action: 'entered' }, moved.length);
      this.#options.logger.error(
        { attemptId: attempt.id, hash: attempt.hash, payouts: moved },
        'payouts sent to manual review',
      );
    }
    return moved.length > 0;
  }

  async #retry(tx: Tx, attempt: AttemptRow, payoutIds: readonly string[], reason: string): Promise<void> {
    const moved = await transitionPayouts(tx, payoutIds, 'attempt_retry', {
      actor: engineActor,
      attemptId: attempt.id,
      reason,
    });
    payoutTransitions.inc({ transition: 'attempt_retry' }, moved.length);
  }

  async #payoutIds(tx: Tx, attempt: AttemptRow): Promise<string[]> {
    return (await selectAttemptPayouts(tx, attempt.id)).map((link) => link.payoutId);
  }

  /** Gives each free channel a batch, stores it, then sends all of them at once. */
  async #buildAndSubmit(): Promise<{ built: number; waitingForNetwork: number }> {
    const ready = await countReadyPayouts(this.#sql);
    if (ready === 0) return { built: 0, waitingForNetwork: 0 };
    let latest: ChainLedger;
    let feePerOperation: bigint;
    try {
      [latest, feePerOperation] = await Promise.all([
        this.#chain.latestLedger(),
        this.#chain.feePerOperation(this.#options.feeCapStroops),
      ]);
    } catch (error) {
      this.#options.logger.warn({ err: error, payouts: ready }, 'no Stellar path answered: payouts wait');
      return { built: 0, waitingForNetwork: ready };
    }
    const attempts: AttemptRow[] = [];
    for (let index = 0; index < this.#channels.size; index += 1) {
      const attempt = await this.#build(latest, feePerOperation).catch((error: unknown) => {
        this.#options.logger.warn({ err: error }, 'could not build a settlement transaction');
        return undefined;
      });
      if (attempt === undefined) break;
      attempts.push(attempt);
    }
    await Promise.all(attempts.map((attempt) => this.#submit(attempt)));
    return { built: attempts.length, waitingForNetwork: 0 };
  }

  async #build(latest: ChainLedger, feePerOperation: bigint): Promise<AttemptRow | undefined> {
    return withTransaction(this.#sql, async (tx) => {
      const channelRow = await claimChannel(tx, [...this.#channels.keys()]);
      const channel = channelRow && this.#channels.get(channelRow.accountId);
      if (!channelRow || !channel) return undefined;
      const chosen = chooseBatch(
        await claimReadyPayouts(tx, this.#options.batchSizeMax),
        this.#options.batchSizeMax,
      );
      if (chosen.length === 0) return undefined;
      const { batch, creations } = await this.#operationsFor(chosen);
      if (batch.length === 0) return undefined;
      const sequence = channelRow.nextSequence ?? (await this.#chainSequence(channelRow.accountId)) + 1n;
      const maxTime = BigInt(Math.floor(this.#clock() / 1_000) + this.#options.windowSeconds);
      const maxLedger = latest.sequence + this.#options.windowLedgers;
      const built = buildSettlement({
        channel,
        hotWallet: this.#options.hotWallet,
        sequence,
        payouts: batch,
        creations,
        feePerOperationStroops: feePerOperation,
        maxTime,
        maxLedger,
        networkPassphrase: this.#options.networkPassphrase,
      });
      const id = randomUUID();
      const ids = batch.map((payout) => payout.id);
      const attempt = {
        id,
        channelAccountId: channelRow.accountId,
        sourceSequence: sequence,
        ...built,
        maxTime,
        maxLedger,
      };
      await insertAttempt(tx, attempt, ids);
      await occupyChannel(tx, channelRow.accountId, id);
      const moved = await transitionPayouts(tx, ids, 'attempt_built', { actor: engineActor, attemptId: id });
      payoutTransitions.inc({ transition: 'attempt_built' }, moved.length);
      payoutOperationsSubmitted.inc(batch.length);
      const row: AttemptRow = {
        ...attempt,
        state: 'built',
        outcomeReason: null,
        resultCodes: null,
        ledger: null,
        submissions: 0,
        feeBumpEnvelopeXdr: null,
        feeBumpStroops: null,
        createdAt: new Date(),
        submittedAt: null,
        lastSubmittedAt: null,
        checkedAt: null,
        resolvedAt: null,
      };
      return row;
    });
  }

  /**
   * XLM to an account that does not exist yet is paid by creating it, decided here from a fresh
   * read: the account may have appeared or gone since acceptance. The reads run inside the build
   * transaction (its rows are skipped by other workers meanwhile), bounded by the batch size and
   * `destinationReadsConcurrencyMax`. Left in the queue for a later round: a payout whose account
   * no path could read, and a second payout to an account this transaction creates (tied to the
   * creation, a failed creation would fail it too). A muxed address is never created (its id would
   * be lost): its payment fails `op_no_destination` and is refunded. Credit assets are payments.
   */
  async #operationsFor(
    payouts: readonly PayoutRow[],
  ): Promise<{ batch: PayoutRow[]; creations: Set<string> }> {
    const accounts = await this.#readDestinations(
      payouts.filter((payout) => payout.asset === 'XLM').map((payout) => baseAccountOf(payout.destination)),
    );
    const batch: PayoutRow[] = [];
    const creations = new Set<string>();
    const created = new Set<string>();
    const deferred: string[] = [];
    for (const payout of payouts) {
      const base = baseAccountOf(payout.destination);
      const account = payout.asset === 'XLM' ? accounts.get(base) : undefined;
      if (account?.kind === 'unknown' || created.has(base)) {
        deferred.push(payout.id);
        continue;
      }
      batch.push(payout);
      if (account?.kind === 'missing' && base === payout.destination) {
        creations.add(payout.id);
        created.add(base);
      }
    }
    if (deferred.length > 0) {
      this.#options.logger.info(
        { payouts: deferred },
        'payouts left for a later round: destination unread or created in this batch',
      );
    }
    return { batch, creations };
  }

  async #readDestinations(accountIds: readonly string[]): Promise<Map<string, DestinationAccount>> {
    const accounts = new Map<string, DestinationAccount>();
    const unread: string[] = [];
    for (const accountId of new Set(accountIds)) {
      if (this.#knownAccounts.has(accountId)) accounts.set(accountId, { kind: 'exists', trusted: true });
      else unread.push(accountId);
    }
    for (let start = 0; start < unread.length; start += destinationReadsConcurrencyMax) {
      const slice = unread.slice(start, start + destinationReadsConcurrencyMax);
      const read = await Promise.all(slice.map((accountId) => this.#chain.destination(accountId, 'XLM')));
      slice.forEach((accountId, index) => {
        const account = read[index];
        if (account === undefined) return;
        accounts.set(accountId, account);
        if (account.kind === 'exists') this.#remember(accountId);
      });
    }
    return accounts;
  }

  #remember(accountId: string): void {
    if (this.#knownAccounts.size >= knownAccountsMax) {
      const oldest = this.#knownAccounts.values().next();
      if (!oldest.done) this.#knownAccounts.delete(oldest.value);
    }
    this.#knownAccounts.add(accountId);
  }

  async #chainSequence(accountId: string): Promise<bigint> {
    const sequence = await this.#chain.accountSequence(accountId);
    if (sequence === undefined)
      throw new OperatingError(
        `channel account ${accountId} does not exist on chain: run settledesk channels ensure`,
      );
    return sequence;
  }
}
