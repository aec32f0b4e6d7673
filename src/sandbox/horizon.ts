import { StrKey } from '@stellar/stellar-sdk';
import type { RequestContext, Route } from './context.ts';
import { feeStatsView } from './fee-stats.ts';
import { badRequest, notFound, sendJson, sendProblem } from './http.ts';
import { isProblem, pageLinks, pageOf, readPage } from './paging.ts';
import type { PaymentRecord } from './records.ts';
import { toid } from './records.ts';
import { accountKey, type Trustline } from './state.ts';
import { streamPayments } from './stream.ts';
import { friendbot, submitAsync, submitSync } from './submission.ts';
import { accountView, ledgerView, paymentView, rootView, transactionView } from './views.ts';

/** Horizon's read routes. Reads are served as of the listener's visible (ingested) ledger. */

const accountPattern = '(G[A-Z2-7]{55})';
const hashPattern = '([0-9a-fA-F]{64})';

function visible(context: RequestContext): number {
  return context.sandbox.visibleLedger(context.listener);
}

function root(context: RequestContext): void {
  const { network } = context.sandbox;
  const latest = network.latestLedger();
  const shown = network.ledger(visible(context)) ?? latest;
  const view = rootView(
    context.base,
    network.networkPassphrase,
    latest,
    shown,
    network.oldestLedger().sequence,
  );
  sendJson(context.response, 200, view);
}

function account(context: RequestContext, [accountId = '']: string[]) {
  if (!StrKey.isValidEd25519PublicKey(accountId))
    return sendProblem(context.response, badRequest('account_id', 'invalid account'));
  const { network } = context.sandbox;
  const ledger = visible(context);
  const entry = network.entryAt(accountKey(accountId), ledger);
  if (entry?.type !== 'account') return sendProblem(context.response, notFound());
  const trustlines = network
    .trustlineKeys(accountId)
    .map((key) => network.entryAt(key, ledger))
    .filter((line): line is { type: 'trustline'; trustline: Trustline } => line?.type === 'trustline')
    .map((line) => line.trustline);
  const closeTime = network.ledger(entry.account.lastModifiedLedger)?.closeTime ?? 0;
  sendJson(context.response, 200, accountView(context.base, entry.account, trustlines, closeTime));
}

export function visiblePayments(context: RequestContext, accountId: string): PaymentRecord[] {
  const ledger = visible(context);
  const includeFailed = context.url.searchParams.get('include_failed') === 'true';
  return context.sandbox.network
    .accountPayments(accountId)
    .filter((payment) => payment.ledger <= ledger && (includeFailed || payment.transactionSuccessful));
}

export function paymentJson(context: RequestContext, payment: PaymentRecord) {
  const view = paymentView(context.base, payment);
  if (context.url.searchParams.get('join') !== 'transactions') return view;
  const record = context.sandbox.network.transaction(payment.transactionHash);
  return record ? { ...view, transaction: transactionView(context.base, record) } : view;
}

function payments(context: RequestContext, [accountId = '']: string[]) {
  if (!StrKey.isValidEd25519PublicKey(accountId))
    return sendProblem(context.response, badRequest('account_id', 'invalid account'));
  const join = context.url.searchParams.get('join');
  if (join !== null && join !== 'transactions')
    return sendProblem(context.response, badRequest('join', 'join must be transactions'));
  const page = readPage(context.url);
  if (isProblem(page)) return sendProblem(context.response, page);
  if (context.request.headers.accept?.includes('text/event-stream'))
    return streamPayments(context, accountId, page);
  const latestToken = toid(visible(context) + 1, 0, 0);
  const records = pageOf(visiblePayments(context, accountId), (payment) => payment.id, page, latestToken);
  const tokens = records.map((payment) => payment.id.toString());
  sendJson(context.response, 200, {
    _links: pageLinks(context.base, context.url, page, tokens),
    _embedded: { records: records.map((payment) => paymentJson(context, payment)) },
  });
}

function transaction(context: RequestContext, [hash = '']: string[]) {
  const requested = hash.toLowerCase();
  const record = context.sandbox.network.transaction(requested);
  if (record === undefined || record.ledger > visible(context))
    return sendProblem(context.response, notFound());
  sendJson(context.response, 200, transactionView(context.base, record, requested));
}

function ledgers(context: RequestContext) {
  const page = readPage(context.url);
  if (isProblem(page)) return sendProblem(context.response, page);
  const shown = visible(context);
  const all = context.sandbox.network.ledgerList().filter((ledger) => ledger.sequence <= shown);
  const records = pageOf(all, (ledger) => toid(ledger.sequence, 0, 0), page, toid(shown + 1, 0, 0));
  const tokens = records.map((ledger) => toid(ledger.sequence, 0, 0).toString());
  sendJson(context.response, 200, {
    _links: pageLinks(context.base, context.url, page, tokens),
    _embedded: { records: records.map((ledger) => ledgerView(context.base, ledger)) },
  });
}

function ledger(context: RequestContext, [sequenceText = '']: string[]) {
  const record = context.sandbox.network.ledger(Number(sequenceText));
  if (record === undefined || record.sequence > visible(context))
    return sendProblem(context.response, notFound());
  sendJson(context.response, 200, ledgerView(context.base, record));
}

function feeStats(context: RequestContext): void {
  sendJson(context.response, 200, feeStatsView(context.sandbox.network, visible(context)));
}

export const horizonRoutes: Route[] = [
  { method: 'GET', pattern: /^\/?$/, name: 'horizon.root', handle: root },
  {
    method: 'GET',
    pattern: new RegExp(`^/accounts/${accountPattern}/?$`),
    name: 'horizon.accounts',
    handle: account,
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/accounts/${accountPattern}/payments/?$`),
    name: 'horizon.payments',
    handle: payments,
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/transactions/${hashPattern}/?$`),
    name: 'horizon.transactions',
    handle: transaction,
  },
  { method: 'GET', pattern: /^\/ledgers\/?$/, name: 'horizon.ledgers', handle: ledgers },
  { method: 'GET', pattern: /^\/ledgers\/(\d{1,10})\/?$/, name: 'horizon.ledgers', handle: ledger },
  { method: 'GET', pattern: /^\/fee_stats\/?$/, name: 'horizon.fee_stats', handle: feeStats },
  { method: 'POST', pattern: /^\/transactions\/?$/, name: 'horizon.submit', handle: submitSync },
  { method: 'POST', pattern: /^\/transactions_async\/?$/, name: 'horizon.submit_async', handle: submitAsync },
  { method: 'GET', pattern: /^\/friendbot\/?$/, name: 'horizon.friendbot', handle: friendbot },
  { method: 'POST', pattern: /^\/friendbot\/?$/, name: 'horizon.friendbot', handle: friendbot },
];
