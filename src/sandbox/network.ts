import { Keypair } from '@stellar/stellar-sdk';
import { assert } from '../platform/assert.ts';
import { OperatingError } from '../platform/errors.ts';
import { type Applied, applyTransaction, chargeFee } from './apply.ts';
import { isSuccess, resultCodes, type TransactionOutcome } from './codes.ts';
import { feePayer, type ParsedEnvelope, parseEnvelope } from './envelope.ts';
import {
  baseFeeStroops,
  baseReserveStroops,
  pendingLedgersMax,
  protocolVersion,
  queueCapacityLedgers,
  totalCoinsStroops,
} from './limits.ts';
import { chargedFee, type Pending, selectTransactions } from './queue.ts';
import { paymentRecords, transactionRecord } from './recording.ts';
import type { LedgerRecord, PaymentRecord, TransactionRecord } from './records.ts';
import {
  type Account,
  accountKey,
  type Entry,
  type EntryChange,
  entryKey,
  LedgerState,
  type Overlay,
} from './state.ts';
import { checkAdmission } from './validation.ts';
import {
  encodeEntryChanges,
  ledgerHeader,
  sha256,
  toHex,
  transactionMeta,
  transactionResult,
  zeroHash,
} from './xdr.ts';

export type Admission =
  | { status: 'malformed' }
  | { status: 'pending'; hash: string }
  | { status: 'duplicate'; hash: string }
  | { status: 'applied'; hash: string; record: TransactionRecord }
  | { status: 'rejected'; hash: string; outcome: TransactionOutcome; resultXdr: string; envelopeXdr: string }
  | { status: 'try_again_later'; hash: string };

export type NetworkSnapshot = {
  networkPassphrase: string;
  ledgers: LedgerRecord[];
  entries: Entry[];
  transactions: TransactionRecord[];
  payments: PaymentRecord[];
};

export type NetworkOptions = {
  networkPassphrase: string;
  ledgerCapacityOps: number;
  clock: () => number;
};

type LedgerListener = (ledger: LedgerRecord) => void;

/**
 * The network: committed state, the transaction queue and the closed-ledger history. Everything is
 * synchronous; the server decides when ledgers close.
 */
export class Network {
  readonly networkPassphrase: string;
  readonly rootAccountId: string;
  readonly ledgerCapacityOps: number;
  private readonly clock: () => number;
  private readonly state = new LedgerState();
  private readonly ledgers: LedgerRecord[] = [];
  private readonly transactions = new Map<string, TransactionRecord>();
  private readonly outerHashByInner = new Map<string, string>();
  private readonly payments: PaymentRecord[] = [];
  private readonly paymentsByAccount = new Map<string, PaymentRecord[]>();
  private queue: Pending[] = [];
  private arrivals = 0;
  private readonly listeners = new Set<LedgerListener>();

  constructor(options: NetworkOptions, snapshot?: NetworkSnapshot) {
    this.networkPassphrase = options.networkPassphrase;
    this.rootAccountId = Keypair.master(options.networkPassphrase).publicKey();
    this.ledgerCapacityOps = options.ledgerCapacityOps;
    this.clock = options.clock;
    if (snapshot) this.restore(snapshot);
    else this.genesis();
  }

  private genesis(): void {
    const root: Account = {
      id: this.rootAccountId,
      balanceStroops: totalCoinsStroops,
      sequence: 0n,
      subentryCount: 0,
      lastModifiedLedger: 1,
    };
    this.state.set(accountKey(root.id), { type: 'account', account: root }, 1);
    this.ledgers.push(this.header(1, zeroHash, this.closeTimeNow(0), [], [], 0n));
  }

  private restore(snapshot: NetworkSnapshot): void {
    if (snapshot.networkPassphrase !== this.networkPassphrase) {
      throw new OperatingError(
        `the data folder holds a network with passphrase "${snapshot.networkPassphrase}": use another data folder`,
      );
    }
    for (const entry of snapshot.entries) {
      const ledger =
        entry.type === 'account' ? entry.account.lastModifiedLedger : entry.trustline.lastModifiedLedger;
      this.state.set(entryKey(entry), entry, ledger);
    }
    this.ledgers.push(...snapshot.ledgers);
    for (const record of snapshot.transactions) this.remember(record);
    for (const payment of snapshot.payments) this.rememberPayment(payment);
  }

  snapshot(): NetworkSnapshot {
    return {
      networkPassphrase: this.networkPassphrase,
      ledgers: [...this.ledgers],
      entries: this.state.entries(),
      transactions: [...this.transactions.values()],
      payments: [...this.payments],
    };
  }

  onLedgerClosed(listener: LedgerListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  latestLedger(): LedgerRecord {
    const latest = this.ledgers.at(-1);
    assert(latest !== undefined, 'the network has no genesis ledger');
    return latest;
  }

  oldestLedger(): LedgerRecord {
    const oldest = this.ledgers[0];
    assert(oldest !== undefined, 'the network has no genesis ledger');
    return oldest;
  }

  ledger(sequence: number): LedgerRecord | undefined {
    const first = this.oldestLedger().sequence;
    return this.ledgers[sequence - first];
  }

  ledgerList(): readonly LedgerRecord[] {
    return this.ledgers;
  }

  /** An entry as of a ledger; the latest one when `ledger` is the latest ledger. */
  entryAt(key: string, ledger: number): Entry | undefined {
    return ledger >= this.latestLedger().sequence ? this.state.get(key) : this.state.getAt(key, ledger);
  }

  account(accountId: string): Account | undefined {
    const entry = this.state.get(accountKey(accountId));
    return entry?.type === 'account' ? entry.account : undefined;
  }

  trustlineKeys(accountId: string): string[] {
    return this.state.trustlineKeys(accountId);
  }

  transaction(hash: string): TransactionRecord | undefined {
    return this.transactions.get(hash) ?? this.transactions.get(this.outerHashByInner.get(hash) ?? '');
  }

  isPending(hash: string): boolean {
    return this.queue.some(
      (pending) => pending.envelope.hash === hash || pending.envelope.inner.hash === hash,
    );
  }

  pendingCount(): number {
    return this.queue.length;
  }

  accountPayments(accountId: string): readonly PaymentRecord[] {
    return this.paymentsByAccount.get(accountId) ?? [];
  }

  allEntries(): Entry[] {
    return this.state.entries();
  }

  submit(envelopeXdr: string): Admission {
    const envelope = parseEnvelope(envelopeXdr, this.networkPassphrase);
    if (envelope === undefined) return { status: 'malformed' };
    const { hash } = envelope;
    const known = this.transaction(hash);
    if (known) return { status: 'applied', hash, record: known };
    if (this.isPending(hash)) return { status: 'duplicate', hash };
    const refusal = checkAdmission(envelope, this.admissionContext());
    if (refusal) {
      const resultXdr = transactionResult(refusal).toXdr('base64');
      return { status: 'rejected', hash, outcome: refusal, resultXdr, envelopeXdr: envelope.envelopeXdr };
    }
    if (this.queuedOperations() + envelope.inner.operations.length > this.queueCapacityOps()) {
      return { status: 'try_again_later', hash };
    }
    this.arrivals += 1;
    this.queue.push({ envelope, receivedLedger: this.latestLedger().sequence, arrival: this.arrivals });
    return { status: 'pending', hash };
  }

  /** The next sequence number for a new transaction from this account, counting queued ones. */
  nextSequence(account: Account): bigint {
    let next = account.sequence + 1n;
    for (const pending of this.queue) {
      const { inner } = pending.envelope;
      if (inner.source.accountId === account.id && inner.sequence >= next) next = inner.sequence + 1n;
    }
    return next;
  }

  private admissionContext() {
    const latest = this.latestLedger();
    return {
      account: (accountId: string) => this.account(accountId),
      nextSequence: (account: Account) => this.nextSequence(account),
      pendingFeesStroops: (accountId: string) => this.pendingFees(accountId),
      closeTime: BigInt(this.closeTimeNow(latest.closeTime)),
      ledger: latest.sequence + 1,
      baseFeeStroops,
    };
  }

  private pendingFees(accountId: string): bigint {
    let total = 0n;
    for (const pending of this.queue) {
      if (feePayer(pending.envelope) === accountId) {
        total += pending.envelope.feeBump?.feeStroops ?? pending.envelope.inner.feeStroops;
      }
    }
    return total;
  }

  private queuedOperations(): number {
    return this.queue.reduce((sum, pending) => sum + pending.envelope.inner.operations.length, 0);
  }

  private queueCapacityOps(): number {
    return this.ledgerCapacityOps * queueCapacityLedgers;
  }

  /**
   * Close times never go backwards but may repeat: with ledgers every 50 ms in tests, forcing them
   * to advance a second per ledger (as Core does) would run the ledger clock far ahead of real
   * time and expire every transaction's time bounds early.
   */
  private closeTimeNow(previous: number): number {
    return Math.max(Math.floor(this.clock() / 1_000), previous);
  }

  closeLedger(): LedgerRecord {
    const previous = this.latestLedger();
    const sequence = previous.sequence + 1;
    const closeTime = this.closeTimeNow(previous.closeTime);
    const selection = selectTransactions(this.queue, {
      account: (accountId) => this.account(accountId),
      closeTime: BigInt(closeTime),
      ledger: sequence,
      capacityOps: this.ledgerCapacityOps,
      baseFeeStroops,
    });
    const fees = selection.selected.map((pending) => {
      const fee = chargedFee(pending.envelope, selection.baseFeeStroops);
      const charge = chargeFee(this.state, pending.envelope, fee, sequence);
      this.commit(charge.writes, sequence);
      return { fee, changes: charge.changes };
    });
    const applied = selection.selected.map((pending, index) => {
      const fee = fees[index];
      assert(fee !== undefined, 'fee phase and apply phase disagree');
      const result = applyTransaction(this.state, pending.envelope, fee.fee, sequence);
      this.commit(result.writes, sequence);
      return { envelope: pending.envelope, result, feeChanges: fee.changes };
    });
    this.queue = this.queue.filter(
      (pending) =>
        !selection.selected.includes(pending) &&
        !selection.invalid.includes(pending) &&
        pending.receivedLedger + pendingLedgersMax > sequence,
    );
    const feesStroops = fees.reduce((sum, fee) => sum + fee.fee, 0n);
    return this.seal(sequence, previous, closeTime, applied, feesStroops);
  }

  private commit(writes: Overlay, ledger: number): void {
    for (const [key, entry] of writes.writes) this.state.set(key, entry, ledger);
  }

  private seal(
    sequence: number,
    previous: LedgerRecord,
    closeTime: number,
    applied: { envelope: ParsedEnvelope; result: Applied; feeChanges: EntryChange[] }[],
    feesStroops: bigint,
  ): LedgerRecord {
    const records = applied.map(({ envelope, result, feeChanges }, index) =>
      transactionRecord(envelope, {
        ledger: sequence,
        applicationOrder: index + 1,
        closeTime,
        outcome: result.outcome,
        resultXdr: transactionResult(result.outcome).toXdr('base64'),
        resultMetaXdr: transactionMeta(result.sequenceChanges, result.operationChanges).toXdr('base64'),
        feeMetaXdr: encodeEntryChanges(feeChanges),
        successful: isSuccess(result.outcome),
        resultCodes: resultCodes(result.outcome),
      }),
    );
    const ledger = this.header(
      sequence,
      Buffer.from(previous.hash, 'hex'),
      closeTime,
      applied.map(({ envelope }) => envelope),
      records,
      previous.feePoolStroops + feesStroops,
    );
    this.ledgers.push(ledger);
    for (const record of records) this.remember(record);
    applied.forEach(({ envelope, result }, index) => {
      const record = records[index];
      if (!record) return;
      for (const payment of paymentRecords(envelope, record, result.outcome)) this.rememberPayment(payment);
    });
    for (const listener of this.listeners) listener(ledger);
    return ledger;
  }

  private header(
    sequence: number,
    previousHash: Uint8Array,
    closeTime: number,
    envelopes: ParsedEnvelope[],
    records: TransactionRecord[],
    feePoolStroops: bigint,
  ): LedgerRecord {
    const header = ledgerHeader({
      sequence,
      previousHash,
      closeTime: BigInt(closeTime),
      txSetHash: sha256(
        previousHash,
        ...envelopes.map((envelope) => Buffer.from(envelope.envelopeXdr, 'base64')),
      ),
      txSetResultHash: sha256(...records.map((record) => Buffer.from(record.resultXdr, 'base64'))),
      totalCoinsStroops,
      feePoolStroops,
      baseFeeStroops,
      baseReserveStroops,
      maxTxSetSize: this.ledgerCapacityOps,
      protocolVersion,
    });
    const headerBytes = header.toXdr('raw');
    const successful = records.filter((record) => record.successful).length;
    return {
      sequence,
      hash: toHex(sha256(headerBytes)),
      previousHash: toHex(previousHash),
      closeTime,
      transactionHashes: records.map((record) => record.hash),
      successfulTransactionCount: successful,
      failedTransactionCount: records.length - successful,
      operationCount: records.filter((r) => r.successful).reduce((sum, r) => sum + r.operationCount, 0),
      txSetOperationCount: records.reduce((sum, record) => sum + record.operationCount, 0),
      totalCoinsStroops,
      feePoolStroops,
      baseFeeStroops,
      baseReserveStroops,
      maxTxSetSize: this.ledgerCapacityOps,
      headerXdr: Buffer.from(headerBytes).toString('base64'),
    };
  }

  private remember(record: TransactionRecord): void {
    this.transactions.set(record.hash, record);
    if (record.innerHash) this.outerHashByInner.set(record.innerHash, record.hash);
  }

  private rememberPayment(payment: PaymentRecord): void {
    this.payments.push(payment);
    for (const accountId of participants(payment)) {
      const list = this.paymentsByAccount.get(accountId) ?? [];
      list.push(payment);
      this.paymentsByAccount.set(accountId, list);
    }
  }
}

function participants(payment: PaymentRecord): Set<string> {
  const { body } = payment;
  const involved = body.type === 'create_account' ? [body.funder, body.account] : [body.from, body.to];
  return new Set([payment.sourceAccount, ...involved]);
}
