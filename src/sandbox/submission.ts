import { Account, Keypair, Operation, StrKey, TransactionBuilder } from '@stellar/stellar-sdk';
import { assert } from '../platform/assert.ts';
import { resultCodes } from './codes.ts';
import type { RequestContext } from './context.ts';
import { badRequest, type Problem, problemTypeBase, sendJson, sendProblem } from './http.ts';
import { friendbotStartingBalanceStroops } from './limits.ts';
import type { Admission } from './network.ts';
import type { TransactionRecord } from './records.ts';
import { amount, transactionView } from './views.ts';
import { transactionResult } from './xdr.ts';

/** Horizon's submission routes and friendbot. */

/** Friendbot bids above the base fee so that a busy sandbox still funds test accounts. */
const friendbotFeeBidStroops = 1_000;

export function transactionFailed(extras: Record<string, unknown>): Problem {
  return {
    type: `${problemTypeBase}transaction_failed`,
    title: 'Transaction Failed',
    status: 400,
    detail:
      'The transaction failed when submitted to the stellar network. The `extras.result_codes` field on this response contains further details.  Descriptions of each code can be found at: https://developers.stellar.org/docs/data/apis/horizon/api-reference/errors/result-codes/transactions',
    extras,
  };
}

function malformed(envelopeXdr: string): Problem {
  return {
    type: `${problemTypeBase}transaction_malformed`,
    title: 'Transaction Malformed',
    status: 400,
    detail: 'Horizon could not decode the transaction envelope in this request.',
    extras: { envelope_xdr: envelopeXdr },
  };
}

export function submissionTimeout(hash: string): Problem {
  return {
    type: `${problemTypeBase}timeout`,
    title: 'Timeout',
    status: 504,
    detail:
      'Your request timed out before completing.  Please try your request again. If you are submitting a transaction make sure you are sending exactly the same transaction (with the same sequence number).',
    extras: { hash },
  };
}

function tryAgainLater(hash: string): Problem {
  return {
    type: `${problemTypeBase}transaction_submission_try_again_later`,
    title: 'Try Again Later',
    status: 503,
    detail: 'The transaction queue is full; resubmit later.',
    extras: { hash },
  };
}

function envelopeField(context: RequestContext): string | undefined {
  const value = new URLSearchParams(context.body).get('tx');
  return value === null || value === '' ? undefined : value;
}

function respondRecord(context: RequestContext, record: TransactionRecord) {
  if (record.successful) return sendJson(context.response, 200, transactionView(context.base, record));
  sendProblem(
    context.response,
    transactionFailed({
      envelope_xdr: record.envelopeXdr,
      result_xdr: record.resultXdr,
      result_codes: record.resultCodes,
      hash: record.hash,
    }),
  );
}

/** Resolves with the record once this listener has ingested it, or undefined at the deadline. */
export function waitForInclusion(
  context: RequestContext,
  hash: string,
): Promise<TransactionRecord | undefined> {
  const { sandbox } = context;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (record: TransactionRecord | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      offLedger();
      offFaults();
      context.response.off('close', onClose);
      resolve(record);
    };
    const check = () => {
      const record = sandbox.network.transaction(hash);
      if (record && record.ledger <= sandbox.visibleLedger(context.listener)) finish(record);
    };
    const recheck = () => void sandbox.whenPersisted().then(check);
    const onClose = () => finish(undefined);
    const timer = setTimeout(() => finish(undefined), sandbox.submissionTimeoutMs);
    const offLedger = sandbox.network.onLedgerClosed(recheck);
    const offFaults = sandbox.faults.onChange(recheck);
    context.response.on('close', onClose);
    check();
  });
}

/** An accepted transaction whose client is told nothing useful: a 504 or a dropped connection. */
function timeOutAccepted(context: RequestContext, hash: string): void {
  if (context.acceptedTimeout?.mode === 'drop_connection') {
    context.request.socket.destroy();
    return;
  }
  sendProblem(context.response, submissionTimeout(hash));
}

async function respondSync(
  context: RequestContext,
  admission: Admission,
  envelopeXdr: string,
): Promise<void> {
  switch (admission.status) {
    case 'malformed':
      return sendProblem(context.response, malformed(envelopeXdr));
    case 'rejected':
      return sendProblem(
        context.response,
        transactionFailed({
          envelope_xdr: admission.envelopeXdr,
          result_xdr: admission.resultXdr,
          result_codes: resultCodes(admission.outcome),
          hash: admission.hash,
        }),
      );
    case 'try_again_later':
      return sendProblem(context.response, tryAgainLater(admission.hash));
    case 'applied':
      return respondRecord(context, admission.record);
    case 'pending':
    case 'duplicate': {
      if (context.acceptedTimeout) return timeOutAccepted(context, admission.hash);
      const record = await waitForInclusion(context, admission.hash);
      if (record) return respondRecord(context, record);
      return sendProblem(context.response, submissionTimeout(admission.hash));
    }
  }
}

export async function submitSync(context: RequestContext): Promise<void> {
  const envelopeXdr = envelopeField(context);
  if (envelopeXdr === undefined) return sendProblem(context.response, badRequest('tx', 'tx is required'));
  await respondSync(context, context.sandbox.network.submit(envelopeXdr), envelopeXdr);
}

/** A resubmitted envelope that already applied fails admission in Core: its sequence is used up. */
function consumedSequenceXdr(): string {
  return transactionResult({ code: 'tx_bad_seq', feeChargedStroops: 0n }).toXdr('base64');
}

export function submitAsync(context: RequestContext) {
  const envelopeXdr = envelopeField(context);
  if (envelopeXdr === undefined) return sendProblem(context.response, badRequest('tx', 'tx is required'));
  const admission = context.sandbox.network.submit(envelopeXdr);
  const { response } = context;
  switch (admission.status) {
    case 'malformed':
      return sendProblem(response, malformed(envelopeXdr));
    case 'pending':
      if (context.acceptedTimeout) return timeOutAccepted(context, admission.hash);
      return sendJson(response, 201, { tx_status: 'PENDING', hash: admission.hash });
    case 'duplicate':
      return sendJson(response, 409, { tx_status: 'DUPLICATE', hash: admission.hash });
    case 'try_again_later':
      return sendJson(response, 503, { tx_status: 'TRY_AGAIN_LATER', hash: admission.hash });
    case 'rejected':
      return sendJson(response, 400, {
        tx_status: 'ERROR',
        hash: admission.hash,
        error_result_xdr: admission.resultXdr,
      });
    case 'applied':
      return sendJson(response, 400, {
        tx_status: 'ERROR',
        hash: admission.hash,
        error_result_xdr: consumedSequenceXdr(),
      });
  }
}

/** Funds a new account from the root account, which holds the network's whole genesis supply. */
export async function friendbot(context: RequestContext): Promise<void> {
  const address = context.url.searchParams.get('addr') ?? new URLSearchParams(context.body).get('addr') ?? '';
  if (!StrKey.isValidEd25519PublicKey(address))
    return sendProblem(context.response, badRequest('addr', 'invalid address'));
  const { network } = context.sandbox;
  const rootKeypair = Keypair.master(network.networkPassphrase);
  const root = network.account(network.rootAccountId);
  assert(root !== undefined, 'the root account is missing');
  const sequence = network.nextSequence(root) - 1n;
  const transaction = new TransactionBuilder(new Account(root.id, sequence.toString()), {
    fee: String(friendbotFeeBidStroops),
    networkPassphrase: network.networkPassphrase,
  })
    .addOperation(
      Operation.createAccount({
        destination: address,
        startingBalance: amount(friendbotStartingBalanceStroops),
      }),
    )
    .setTimeout(0)
    .build();
  transaction.sign(rootKeypair);
  const envelopeXdr = transaction.toXDR();
  await respondSync(context, network.submit(envelopeXdr), envelopeXdr);
}
