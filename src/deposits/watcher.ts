import { Counter, Gauge } from 'prom-client';
import { readControls } from '../controls/service.ts';
import { selectAssetPrecision } from '../ledger/data.ts';
import { parseAmount } from '../money/money.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import type { Logger } from '../platform/logging.ts';
import { registry } from '../platform/metrics.ts';
import { type HorizonPayment, readPaymentsPage } from '../stellar/horizon-read.ts';
import { creditDeposit, parkInSuspense } from './credit.ts';
import { incomingOf, Unreadable } from './incoming.ts';
import {
  advanceCursor,
  insertReject,
  recordSeenLedger,
  selectAccountByMemo,
  selectWatcher,
} from './watcher-data.ts';

/**
 * The on-chain deposit watcher: follows Horizon's payments into the hot wallet (polling, so a
 * Horizon outage is a failed poll on one URL and the next URL is tried), in order, from a cursor
 * stored in the same transaction as each credit. A payment is attributed by its muxed id or its
 * id memo; money no account claims goes to `deposit_suspense`; a record it cannot read is set
 * aside (stored and counted) and the cursor moves on, so one bad record never stops it. What is
 * money in is decided by `#incoming`, one case per type of Horizon's payment records.
 */

export const watcherPageLimit = 200;
export const stellarProvider = 'stellar';

export const watcherLastLedgerAge = new Gauge({
  name: 'deposit_watcher_last_ledger_age_seconds',
  help: 'Seconds since the newest ledger the deposit watcher has seen closed: grows when the watcher or Horizon stalls.',
  registers: [registry],
});

export const watcherRecords = new Counter({
  name: 'deposit_watcher_records_total',
  help: 'Payments handled by the deposit watcher, by outcome (credited, suspense, replay, ignored, rejected).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export const watcherSuspense = new Counter({
  name: 'deposit_watcher_suspense_total',
  help: 'Chain deposits parked in deposit_suspense by the watcher, by reason (no_memo, unknown_memo, account_refused, account_merge).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

type Handled = 'credited' | 'suspense' | 'replay' | 'ignored' | 'rejected';
export class DepositWatcher {
  readonly #sql: Sql;
  readonly #horizonUrls: readonly string[];
  readonly #receivingAccount: string;
  readonly #logger: Logger;

  constructor(
    sql: Sql,
    options: { horizonUrls: readonly string[]; receivingAccount: string; logger: Logger },
  ) {
    this.#sql = sql;
    this.#horizonUrls = options.horizonUrls;
    this.#receivingAccount = options.receivingAccount;
    this.#logger = options.logger;
  }

  /** One poll: one page of payments. Returns whether it handled anything (so the caller polls again at once). */
  async poll(): Promise<boolean> {
    const state = await selectWatcher(this.#sql);
    const page = await readPaymentsPage(
      this.#horizonUrls,
      this.#receivingAccount,
      state.cursor,
      watcherPageLimit,
    );
    // read_only stops new money movement: the watcher waits (its lag shows it) and loses nothing.
    if ((await readControls(this.#sql)).paymentsMode === 'read_only') return false;
    for (const record of page.records) await this.#handle(record);
    const closedAt = new Date(page.root.history_latest_ledger_closed_at);
    await recordSeenLedger(this.#sql, page.root.history_latest_ledger, closedAt);
    watcherLastLedgerAge.set(Math.max(0, (Date.now() - closedAt.getTime()) / 1_000));
    return page.records.length > 0;
  }

  async #handle(record: HorizonPayment): Promise<void> {
    const token = BigInt(record.paging_token);
    let outcome: Handled;
    try {
      outcome = await withTransaction(this.#sql, async (tx) => {
        const handled = await this.#credit(tx, record);
        await advanceCursor(tx, token);
        return handled;
      });
    } catch (error) {
      const readOnly = error instanceof DomainError && error.type === 'payments/read-only';
      if (readOnly || !(error instanceof Unreadable || error instanceof DomainError)) throw error;
      // Set aside and move on: a person looks at deposit_watcher_rejects.
      await withTransaction(this.#sql, async (tx) => {
        await insertReject(tx, token, error.message, record);
        await advanceCursor(tx, token);
      });
      this.#logger.error(
        { pagingToken: record.paging_token, reason: error.message },
        'deposit record set aside',
      );
      outcome = 'rejected';
    }
    watcherRecords.inc({ outcome });
  }

  async #credit(tx: Tx, record: HorizonPayment): Promise<Handled> {
    const incoming = incomingOf(record, this.#receivingAccount);
    if (incoming === undefined) return 'ignored';
    const { asset, amount } = incoming;
    const precision = await selectAssetPrecision(tx, asset);
    if (precision === undefined) throw new Unreadable(`asset ${asset} is not enabled`);
    const parsed = parseAmount(amount, { precision });
    if (!parsed.ok || parsed.minor <= 0n) throw new Unreadable(`amount ${amount} does not fit ${asset}`);
    const reference = record.paging_token;
    let reason = incoming.parkReason;
    if (reason === undefined) {
      const memoId = this.#memoId(record);
      const accountId = memoId === undefined ? undefined : await selectAccountByMemo(tx, memoId);
      reason = memoId === undefined ? 'no_memo' : 'unknown_memo';
      if (accountId !== undefined) {
        try {
          const credit = await creditDeposit(tx, {
            provider: stellarProvider,
            reference,
            accountId,
            asset,
            amount,
            source: 'chain',
          });
          return credit.kind === 'credited' ? 'credited' : 'replay';
        } catch (error) {
          // The memo names an account that cannot take it (another asset, closed): suspense, not lost.
          if (!(error instanceof DomainError) || error.type === 'payments/read-only') throw error;
          reason = 'account_refused';
        }
      }
    }
    const parked = await parkInSuspense(tx, {
      provider: stellarProvider,
      reference,
      asset,
      amountMinor: parsed.minor,
      reason,
    });
    if (parked.kind === 'replay') return 'replay';
    watcherSuspense.inc({ reason });
    this.#logger.warn({ pagingToken: reference, type: record.type, reason }, 'deposit parked in suspense');
    return 'suspense';
  }

  #memoId(record: HorizonPayment): bigint | undefined {
    if (record.to_muxed_id !== undefined)
      return /^\d{1,20}$/.test(record.to_muxed_id) ? BigInt(record.to_muxed_id) : undefined;
    const memo = record.transaction;
    return memo?.memo_type === 'id' && memo.memo !== undefined && /^\d{1,20}$/.test(memo.memo)
      ? BigInt(memo.memo)
      : undefined;
  }
}
