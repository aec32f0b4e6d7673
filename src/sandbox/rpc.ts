import { StrKey, xdr } from '@stellar/stellar-sdk';
import type { RequestContext } from './context.ts';
import { sendJson } from './http.ts';
import { protocolVersion } from './limits.ts';
import type { Network } from './network.ts';
import { submissionTimeout } from './submission.ts';
import { ledgerCloseMeta, ledgerEntryDataXdr, transactionResult } from './xdr.ts';

/** Stellar RPC's JSON-RPC 2.0 methods that settledesk uses, at `/rpc`. */

type JsonRpcRequest = { id: unknown; method: string; params: Record<string, unknown> };
type MethodResult = { result: unknown } | { error: { code: number; message: string } };

const invalidParams = -32602;
const methodNotFound = -32601;
const internalError = -32603;
const hashPattern = /^[0-9a-f]{64}$/;
const ledgerKeysMax = 200;

export function parseRpcRequest(body: string): JsonRpcRequest | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { id, method, params } = parsed as Record<string, unknown>;
    if (typeof method !== 'string') return undefined;
    const named = typeof params === 'object' && params !== null && !Array.isArray(params) ? params : {};
    return { id: id ?? null, method, params: named as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

function ledgerSummary(network: Network) {
  const latest = network.latestLedger();
  const oldest = network.oldestLedger();
  return {
    latestLedger: latest.sequence,
    latestLedgerCloseTime: String(latest.closeTime),
    oldestLedger: oldest.sequence,
    oldestLedgerCloseTime: String(oldest.closeTime),
  };
}

function latestLedger(network: Network) {
  const latest = network.latestLedger();
  const transactions = latest.transactionHashes.flatMap((hash) => network.transaction(hash) ?? []);
  return {
    id: latest.hash,
    sequence: latest.sequence,
    protocolVersion,
    closeTime: String(latest.closeTime),
    headerXdr: latest.headerXdr,
    metadataXdr: ledgerCloseMeta(latest.headerXdr, latest.hash, transactions).toXdr('base64'),
  };
}

function getTransaction(network: Network, params: Record<string, unknown>): MethodResult {
  const { hash } = params;
  if (typeof hash !== 'string' || !hashPattern.test(hash))
    return { error: { code: invalidParams, message: 'invalid hash' } };
  const summary = ledgerSummary(network);
  const record = network.transaction(hash);
  if (record === undefined) return { result: { status: 'NOT_FOUND', txHash: hash, ...summary } };
  return {
    result: {
      status: record.successful ? 'SUCCESS' : 'FAILED',
      txHash: record.hash,
      ...summary,
      applicationOrder: record.applicationOrder,
      feeBump: record.innerHash !== undefined,
      envelopeXdr: record.envelopeXdr,
      resultXdr: record.resultXdr,
      resultMetaXdr: record.resultMetaXdr,
      ledger: record.ledger,
      createdAt: String(record.closeTime),
    },
  };
}

function sendTransaction(
  context: RequestContext,
  params: Record<string, unknown>,
): MethodResult | 'timed_out' {
  const { network } = context.sandbox;
  const { transaction } = params;
  if (typeof transaction !== 'string')
    return { error: { code: invalidParams, message: 'transaction is required' } };
  const admission = network.submit(transaction);
  const latest = network.latestLedger();
  const common = { latestLedger: latest.sequence, latestLedgerCloseTime: String(latest.closeTime) };
  switch (admission.status) {
    case 'malformed':
      return { error: { code: invalidParams, message: 'invalid transaction envelope' } };
    case 'pending':
      if (context.acceptedTimeout) return 'timed_out';
      return { result: { status: 'PENDING', hash: admission.hash, ...common } };
    case 'duplicate':
      return { result: { status: 'DUPLICATE', hash: admission.hash, ...common } };
    case 'try_again_later':
      return { result: { status: 'TRY_AGAIN_LATER', hash: admission.hash, ...common } };
    case 'rejected':
      return {
        result: { status: 'ERROR', hash: admission.hash, errorResultXdr: admission.resultXdr, ...common },
      };
    case 'applied': {
      const consumed = transactionResult({ code: 'tx_bad_seq', feeChargedStroops: 0n }).toXdr('base64');
      return { result: { status: 'ERROR', hash: admission.hash, errorResultXdr: consumed, ...common } };
    }
  }
}

/** Account entries only: what `rpc.Server.getAccount` asks for. Other keys are simply not found. */
function getLedgerEntries(network: Network, params: Record<string, unknown>): MethodResult {
  const { keys } = params;
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    keys.length > ledgerKeysMax ||
    keys.some((key) => typeof key !== 'string')
  ) {
    return {
      error: { code: invalidParams, message: `keys must be 1 to ${ledgerKeysMax} base64 LedgerKey values` },
    };
  }
  const entries = [];
  for (const key of keys as string[]) {
    let wire: { type: number; account?: { accountId: { ed25519: Uint8Array } } };
    try {
      wire = xdr.LedgerKey.fromXdr(key, 'base64').toXdrObject() as unknown as typeof wire;
    } catch {
      return { error: { code: invalidParams, message: 'a key is not a LedgerKey' } };
    }
    if (wire.type !== 0 || !wire.account) continue;
    const accountId = StrKey.encodeEd25519PublicKey(Buffer.from(wire.account.accountId.ed25519));
    const account = network.account(accountId);
    if (account) entries.push({ key, ...ledgerEntryDataXdr({ type: 'account', account }) });
  }
  return { result: { entries, latestLedger: network.latestLedger().sequence } };
}

function dispatch(context: RequestContext, request: JsonRpcRequest): MethodResult | 'timed_out' {
  const { network, faults } = context.sandbox;
  switch (request.method) {
    case 'getHealth': {
      if (faults.fire('rpc_unhealthy', { route: context.route, listener: context.listener })) {
        return { error: { code: internalError, message: 'rpc is unhealthy: latest ledger is too old' } };
      }
      const { latestLedger, oldestLedger } = ledgerSummary(network);
      return {
        result: {
          status: 'healthy',
          latestLedger,
          oldestLedger,
          ledgerRetentionWindow: latestLedger - oldestLedger + 1,
        },
      };
    }
    case 'getNetwork':
      return {
        result: {
          friendbotUrl: `${context.base}/friendbot`,
          passphrase: network.networkPassphrase,
          protocolVersion,
        },
      };
    case 'getLatestLedger':
      return { result: latestLedger(network) };
    case 'getTransaction':
      return getTransaction(network, request.params);
    case 'sendTransaction':
      return sendTransaction(context, request.params);
    case 'getLedgerEntries':
      return getLedgerEntries(network, request.params);
    default:
      return { error: { code: methodNotFound, message: `method ${request.method} not found` } };
  }
}

export function handleRpc(context: RequestContext, request: JsonRpcRequest): void {
  const outcome = dispatch(context, request);
  if (outcome === 'timed_out') {
    if (context.acceptedTimeout?.mode === 'drop_connection') {
      context.request.socket.destroy();
      return;
    }
    const hash = ''; // The client learns no hash from a timed-out gateway, as behind a real proxy.
    sendJson(context.response, 504, submissionTimeout(hash), 'application/problem+json');
    return;
  }
  sendJson(context.response, 200, { jsonrpc: '2.0', id: request.id, ...outcome }, 'application/json');
}
