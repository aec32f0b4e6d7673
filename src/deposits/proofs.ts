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
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { registry } from '../platform/metrics.ts';
import { creditDeposit } from './credit.ts';
import { insertProof } from './data.ts';
import { stellarProvider } from './watcher.ts';
import { ensureMemo } from './watcher-data.ts';

/**
 * `POST /v1/deposits/verify-proof`: a customer names a transaction hash as proof that they paid.
 * The transaction is read from the network itself and checked: found on this network and
 * successful, a payment to the hot wallet, in the claimed asset and amount, with the account's
 * memo. A match credits it (once: the reference is the same one the watcher uses, so a payment
 * credited either way is credited once); a mismatch is recorded as suspicious with the reason.
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
  verdict: 'credited' | 'already_credited' | 'suspicious';
  reason: ProofReason | null;
  depositId: string | null;
};

export const suspiciousProofs = new Counter({
  name: 'deposit_proofs_total',
  help: 'Payment proofs by verdict (credited, already_credited, suspicious) and reason.',
  labelNames: ['verdict', 'reason'] as const,
  registers: [registry],
});

type ChainTransaction = { successful: boolean; envelope_xdr: string; paging_token: string };

export type ProofInput = {
  transactionHash: string;
  accountId: string;
  asset: string;
  amount: string;
  submittedBy: string;
};

async function readTransaction(
  horizonUrls: readonly string[],
  hash: string,
): Promise<ChainTransaction | undefined> {
  let lastError: unknown;
  for (const base of horizonUrls) {
    try {
      const response = await fetch(`${base}/transactions/${hash}`, { signal: AbortSignal.timeout(10_000) });
      if (response.status === 404) return undefined;
      if (!response.ok) throw new Error(`${base} answered ${response.status}`);
      return (await response.json()) as ChainTransaction;
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
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
  const parsed = parseAmount(text, { precision: 7 });
  return parsed.ok ? parsed.minor : undefined;
}

/** The checks, in order; the first that fails is the reason. */
function check(
  chain: ChainTransaction | undefined,
  input: ProofInput & { memo: bigint; hotWallet: string; networkPassphrase: string },
): { reason: ProofReason } | { reference: string; amount: string } {
  if (!chain) return { reason: 'not_found_on_network' };
  if (!chain.successful) return { reason: 'failed_on_chain' };
  const { memo, payments } = paymentsOf(chain.envelope_xdr, input.networkPassphrase);
  const toUs = payments.filter(
    ({ operation }) => destinationOf(operation.destination).base === input.hotWallet,
  );
  if (toUs.length === 0) return { reason: 'wrong_destination' };
  const inAsset = toUs.filter(({ operation }) => assetCodeOf(operation) === input.asset);
  if (inAsset.length === 0) return { reason: 'wrong_asset' };
  const claimed = amountMinorOf(input.amount);
  const chosen = inAsset.find(
    ({ operation }) => claimed !== undefined && amountMinorOf(operation.amount) === claimed,
  );
  if (!chosen) return { reason: 'wrong_amount' };
  const paidMemo = destinationOf(chosen.operation.destination).id ?? memo;
  if (paidMemo !== input.memo.toString()) return { reason: 'wrong_memo' };
  // The amount as the chain states it, as the watcher sees it: one payment, one payload.
  return {
    reference: (BigInt(chain.paging_token) + BigInt(chosen.index + 1)).toString(),
    amount: chosen.operation.amount,
  };
}

export async function verifyProof(
  sql: Sql,
  input: ProofInput,
  network: { horizonUrls: readonly string[]; networkPassphrase: string; hotWallet: () => Promise<string> },
): Promise<ProofVerdict> {
  const account = await selectAccount(sql, input.accountId);
  if (!account) throw new DomainError('ledger/account-not-found', `no account ${input.accountId}`);
  const [chain, memo, hotWallet] = await Promise.all([
    readTransaction(network.horizonUrls, input.transactionHash),
    ensureMemo(sql, account.id),
    network.hotWallet(),
  ]);
  const checked = check(chain, { ...input, memo, hotWallet, networkPassphrase: network.networkPassphrase });
  const id = randomUUID();
  if ('reason' in checked) {
    await insertProof(sql, { id, ...input, verdict: 'suspicious', reason: checked.reason, depositId: null });
    suspiciousProofs.inc({ verdict: 'suspicious', reason: checked.reason });
    return { id, verdict: 'suspicious', reason: checked.reason, depositId: null };
  }
  return withTransaction(sql, async (tx) => {
    const credit = await creditDeposit(tx, {
      provider: stellarProvider,
      reference: checked.reference,
      accountId: account.id,
      asset: input.asset,
      amount: checked.amount,
      source: 'proof',
    });
    const verdict = credit.kind === 'credited' ? 'credited' : 'already_credited';
    await insertProof(tx, { id, ...input, verdict, reason: null, depositId: credit.deposit.id });
    suspiciousProofs.inc({ verdict, reason: 'none' });
    return { id, verdict, reason: null, depositId: credit.deposit.id };
  });
}
