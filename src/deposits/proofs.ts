import { randomUUID } from 'node:crypto';
import {
  type FeeBumpTransaction,
  MuxedAccount,
  type Operation,
  type Transaction,
  TransactionBuilder,
} from '@stellar/stellar-sdk';
import { Counter } from 'prom-client';
import { selectAccount } from '../ledger/data.ts';
import { parseAmount } from '../money/money.ts';
import { assert } from '../platform/assert.ts';
import type { Config } from '../platform/config.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { enqueueJob } from '../platform/jobs.ts';
import type { Logger } from '../platform/logging.ts';
import { registry } from '../platform/metrics.ts';
import { findStellar } from '../stellar/connect.ts';
import {
  type ChainTransaction,
  firstTransactionLedger,
  lookupTransaction,
  type Question,
  type ReadPath,
  readPathsOf,
  type TransactionLookup,
} from '../stellar/read.ts';
import { stellarDecimals } from '../stellar/units.ts';
import { loadWallet } from '../stellar/wallet.ts';
import { creditDeposit } from './credit.ts';
import { decideProof, insertProof, selectPendingProof } from './data.ts';
import { stellarProvider } from './watcher.ts';
import { ensureMemo } from './watcher-data.ts';

/**
 * `POST /v1/deposits/verify-proof`: a customer names a transaction hash as proof that they paid.
 * The transaction is read from the network itself (src/stellar/read.ts: every Horizon, then RPC)
 * and checked: found on this network and successful, a payment to the hot wallet, in the claimed
 * asset and amount, with the account's memo. A match credits it (once: the reference is the same
 * one the watcher uses, so a payment credited either way is credited once); a mismatch is recorded
 * as suspicious with the reason. "Not found" is a mismatch only when a path that had ingested past
 * the proof's submission says so; when no path can tell (all down, or all behind), the proof is
 * kept `pending` and the verify_payment_proof job asks again, with backoff, until one can.
 */

export const proofReasons = [
  'not_found_on_network',
  'failed_on_chain',
  'wrong_destination',
  'wrong_asset',
  'wrong_amount',
  'wrong_memo',
] as const;
export type ProofReason = (typeof proofReasons)[number];

export type ProofVerdict = {
  id: string;
  verdict: 'pending' | 'credited' | 'already_credited' | 'suspicious';
  reason: ProofReason | null;
  depositId: string | null;
};

type Decision = Omit<ProofVerdict, 'id' | 'verdict'> & {
  verdict: Exclude<ProofVerdict['verdict'], 'pending'>;
};

export const proofVerdicts = new Counter({
  name: 'deposit_proofs_total',
  help: 'Payment proofs by verdict (pending, credited, already_credited, suspicious) and reason.',
  labelNames: ['verdict', 'reason'] as const,
  registers: [registry],
});

export const verifyProofTask = 'verify_payment_proof';
/**
 * graphile-worker waits exp(attempt) seconds between attempts (2.7 s, 7.4 s, 20 s, … 2.25 h):
 * 10 attempts span about 3.5 hours of Stellar outage. A proof still pending after that stays
 * pending (never flagged) and PaymentProofPending alerts on it.
 */
export const verifyProofAttemptsMax = 10;
export const proofJobKeyPrefix = 'payment-proof:';
/**
 * Bound of one request while checking a proof. A path is asked twice at most (Horizon: its root,
 * then the transaction), so a request waits at most 5 × (2 per Horizon + 1) s when every path
 * hangs (25 s with two Horizons): then it is pending, and the job asks again.
 */
export const proofReadTimeoutMs = 5_000;

/** Where proofs are checked: the read paths and passphrase, and the hot wallet, resolved once. */
export type ProofNetwork = {
  chain(): Promise<{ paths: readonly ReadPath[]; networkPassphrase: string }>;
  hotWallet(): Promise<string>;
};

/** Resolved at first use and kept; a failed resolution is tried again at the next use. */
function once<T>(resolve: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= resolve().catch((error: unknown) => {
      value = undefined;
      throw error;
    });
    return value;
  };
}

export function proofNetwork(config: Config): ProofNetwork {
  return {
    chain: once(async () => {
      const endpoints = await findStellar(config).catch(() => {
        // No endpoints configured and no sandbox running here: the caller may try again later.
        throw new DomainError(
          'service/unavailable',
          'the Stellar network is not reachable from this process',
        );
      });
      return { paths: readPathsOf(endpoints), networkPassphrase: endpoints.networkPassphrase };
    }),
    hotWallet: once(async () => (await loadWallet(config)).hotWallet.publicKey()),
  };
}

export type ProofInput = {
  transactionHash: string;
  accountId: string;
  asset: string;
  amount: string;
  submittedBy: string;
};

/** What was claimed, as stored with the proof. */
type Claim = {
  transactionHash: string;
  accountId: string;
  asset: string;
  claimedAmountMinor: bigint | null;
  submittedAt: Date;
};

/**
 * The ledger in question for a proof: the payment was made before the proof was submitted, so a
 * path proves it absent only once it has ingested a ledger closed in a later second than the
 * submission (close times are whole seconds), and holds history back to the first ledger (the
 * payment's age is unknown: a path with a retention window, as RPC has, cannot prove absence).
 */
export function proofQuestion(submittedAt: Date): Question {
  return { throughTime: Math.floor(submittedAt.getTime() / 1_000) + 1, sinceLedger: firstTransactionLedger };
}

function paymentsOf(envelopeXdr: string, networkPassphrase: string) {
  const parsed: Transaction | FeeBumpTransaction = TransactionBuilder.fromXDR(envelopeXdr, networkPassphrase);
  const inner = 'innerTransaction' in parsed ? parsed.innerTransaction : parsed;
  const memo = inner.memo.type === 'id' ? String(inner.memo.value) : undefined;
  return {
    memo,
    payments: inner.operations.flatMap((operation, index) =>
      operation.type === 'payment' ? [{ index, operation: operation as Operation.Payment }] : [],
    ),
  };
}

/** A payment's destination as (base account, muxed id): a muxed address carries its own id. */
function destinationOf(destination: string): { base: string; id: string | undefined } {
  if (!destination.startsWith('M')) return { base: destination, id: undefined };
  const muxed = MuxedAccount.fromAddress(destination, '0');
  return { base: muxed.baseAccount().accountId(), id: muxed.id() };
}

function assetCodeOf(payment: Operation.Payment): string {
  return payment.asset.isNative() ? 'XLM' : `${payment.asset.getCode()}:${payment.asset.getIssuer()}`;
}

function amountMinorOf(text: string): bigint | undefined {
  const parsed = parseAmount(text, { precision: stellarDecimals });
  return parsed.ok ? parsed.minor : undefined;
}

/** The checks, in order; the first that fails is the reason. */
function check(
  chain: ChainTransaction | undefined,
  claim: Claim & { memo: bigint; hotWallet: string; networkPassphrase: string },
): { reason: ProofReason } | { reference: string; amount: string } {
  if (!chain) return { reason: 'not_found_on_network' };
  if (!chain.successful) return { reason: 'failed_on_chain' };
  const { memo, payments } = paymentsOf(chain.envelopeXdr, claim.networkPassphrase);
  const toUs = payments.filter(
    ({ operation }) => destinationOf(operation.destination).base === claim.hotWallet,
  );
  if (toUs.length === 0) return { reason: 'wrong_destination' };
  const inAsset = toUs.filter(({ operation }) => assetCodeOf(operation) === claim.asset);
  if (inAsset.length === 0) return { reason: 'wrong_asset' };
  const chosen = inAsset.find(
    ({ operation }) =>
      claim.claimedAmountMinor !== null && amountMinorOf(operation.amount) === claim.claimedAmountMinor,
  );
  if (!chosen) return { reason: 'wrong_amount' };
  const paidMemo = destinationOf(chosen.operation.destination).id ?? memo;
  if (paidMemo !== claim.memo.toString()) return { reason: 'wrong_memo' };
  // The amount as the chain states it, as the watcher sees it: one payment, one payload.
  return {
    reference: (chain.pagingToken + BigInt(chosen.index + 1)).toString(),
    amount: chosen.operation.amount,
  };
}

type Judged =
  | { kind: 'undecided'; lookup: Extract<TransactionLookup, { kind: 'undecided' }> }
  | { kind: 'checked'; result: ReturnType<typeof check> };

/** Reads the transaction and checks the claim against it, unless no path can tell yet. */
async function judge(sql: Sql, claim: Claim, network: ProofNetwork): Promise<Judged> {
  const [chain, memo, hotWallet] = await Promise.all([
    network.chain(),
    ensureMemo(sql, claim.accountId),
    network.hotWallet(),
  ]);
  const lookup = await lookupTransaction(chain.paths, claim.transactionHash, {
    question: proofQuestion(claim.submittedAt),
    timeoutMs: proofReadTimeoutMs,
  });
  if (lookup.kind === 'undecided') return { kind: 'undecided', lookup };
  const transaction = lookup.kind === 'found' ? lookup.transaction : undefined;
  const result = check(transaction, {
    ...claim,
    memo,
    hotWallet,
    networkPassphrase: chain.networkPassphrase,
  });
  return { kind: 'checked', result };
}

/** A checked claim's verdict, crediting a match (inside the caller's transaction). */
async function decide(tx: Tx, claim: Claim, result: ReturnType<typeof check>): Promise<Decision> {
  if ('reason' in result) return { verdict: 'suspicious', reason: result.reason, depositId: null };
  const credit = await creditDeposit(tx, {
    provider: stellarProvider,
    reference: result.reference,
    accountId: claim.accountId,
    asset: claim.asset,
    amount: result.amount,
    source: 'proof',
  });
  const verdict = credit.kind === 'credited' ? 'credited' : 'already_credited';
  return { verdict, reason: null, depositId: credit.deposit.id };
}

export async function verifyProof(sql: Sql, input: ProofInput, network: ProofNetwork): Promise<ProofVerdict> {
  const account = await selectAccount(sql, input.accountId);
  if (!account) throw new DomainError('ledger/account-not-found', `no account ${input.accountId}`);
  const claim: Claim = {
    transactionHash: input.transactionHash,
    accountId: account.id,
    asset: input.asset,
    claimedAmountMinor: amountMinorOf(input.amount) ?? null,
    submittedAt: new Date(),
  };
  const judged = await judge(sql, claim, network);
  const id = randomUUID();
  const row = { id, ...claim, submittedBy: input.submittedBy };
  if (judged.kind === 'undecided') {
    // The proof and its job commit together: a pending proof always has a job that decides it.
    await withTransaction(sql, async (tx) => {
      await insertProof(tx, { ...row, verdict: 'pending', reason: null, depositId: null });
      await enqueueJob(
        tx,
        verifyProofTask,
        { proofId: id },
        { jobKey: `${proofJobKeyPrefix}${id}`, maxAttempts: verifyProofAttemptsMax },
      );
    });
    proofVerdicts.inc({ verdict: 'pending', reason: 'none' });
    return { id, verdict: 'pending', reason: null, depositId: null };
  }
  const { result } = judged;
  const decision = await withTransaction(sql, async (tx) => {
    const decided = await decide(tx, claim, result);
    await insertProof(tx, { ...row, ...decided });
    return decided;
  });
  proofVerdicts.inc({ verdict: decision.verdict, reason: decision.reason ?? 'none' });
  return { id, ...decision };
}

/** Thrown by the job while no path can decide: graphile-worker runs it again after its backoff. */
export class ProofUndecided extends Error {
  override name = 'ProofUndecided';
}

/**
 * The verify_payment_proof job: checks a pending proof again, with the question it was submitted
 * with. Safe to run any number of times: only a pending proof is decided, under its row lock.
 */
export async function recheckProof(
  sql: Sql,
  proofId: string,
  network: ProofNetwork,
  logger: Logger,
): Promise<ProofVerdict['verdict'] | 'gone'> {
  const proof = await selectPendingProof(sql, proofId);
  if (!proof) return 'gone';
  const judged = await judge(sql, proof, network);
  if (judged.kind === 'undecided') {
    const misses = judged.lookup.misses;
    const behind = judged.lookup.behind.map(({ path, ingested }) => ({ path, ledger: ingested.sequence }));
    // Every path refused the request itself (terminal): asking again cannot help. The proof stays
    // pending, which PaymentProofPending alerts on; the log says why.
    if (!judged.lookup.retryable) {
      logger.error({ proofId, misses }, 'payment proof left pending: every Stellar path refused the lookup');
      return 'pending';
    }
    throw new ProofUndecided(
      `no Stellar path can decide proof ${proofId} yet: ${JSON.stringify({ behind, misses })}`,
    );
  }
  const { result } = judged;
  const decision = await withTransaction(sql, async (tx) => {
    if (!(await selectPendingProof(tx, proofId, { forUpdate: true }))) return undefined;
    const decided = await decide(tx, proof, result);
    assert(await decideProof(tx, proofId, decided), `proof ${proofId} is locked pending`);
    return decided;
  });
  if (!decision) return 'gone';
  proofVerdicts.inc({ verdict: decision.verdict, reason: decision.reason ?? 'none' });
  logger.info(
    { proofId, verdict: decision.verdict, reason: decision.reason },
    'pending payment proof decided',
  );
  return decision.verdict;
}
