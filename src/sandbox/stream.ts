import type { RequestContext } from './context.ts';
import { paymentJson, visiblePayments } from './horizon.ts';
import { pageLimitMax, streamClientsMax } from './limits.ts';
import type { Page } from './paging.ts';
import { toid } from './records.ts';

/**
 * Server-Sent Events for `/accounts/{id}/payments`, as Horizon streams them: each event carries one
 * record with its paging token as the event id, so a reconnecting client resumes from
 * `Last-Event-ID` (the SDK also moves its `cursor`). New records are pushed after each ledger
 * this listener ingests.
 */

let openStreams = 0;

/** Horizon asks EventSource clients to reconnect after one second. */
const retryMs = 1_000;

export function streamPayments(context: RequestContext, accountId: string, page: Page): void {
  const { response, request, sandbox } = context;
  if (openStreams >= streamClientsMax) {
    response.writeHead(503).end();
    return;
  }
  openStreams += 1;
  const lastEventId = request.headers['last-event-id'];
  const resumeFrom =
    typeof lastEventId === 'string' && /^\d{1,20}$/.test(lastEventId) ? BigInt(lastEventId) : undefined;
  let cursor =
    resumeFrom ??
    (page.cursor === 'now' ? toid(sandbox.visibleLedger(context.listener) + 1, 0, 0) : (page.cursor ?? 0n));
  response.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  response.write(`retry: ${retryMs}\n\n`);
  const flush = () => {
    // Drain in bounded batches: a slow client must not make one push unbounded.
    for (let batch = 0; batch < pageLimitMax; batch += 1) {
      const fresh = visiblePayments(context, accountId)
        .filter((payment) => payment.id > cursor)
        .slice(0, pageLimitMax);
      if (fresh.length === 0) return;
      for (const payment of fresh) {
        response.write(`id: ${payment.id}\ndata: ${JSON.stringify(paymentJson(context, payment))}\n\n`);
        cursor = payment.id;
      }
    }
  };
  const push = () => void sandbox.whenPersisted().then(flush);
  const offLedger = sandbox.network.onLedgerClosed(push);
  const offFaults = sandbox.faults.onChange(push);
  response.on('close', () => {
    openStreams -= 1;
    offLedger();
    offFaults();
  });
  flush();
}
