import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestService } from '../../test/support/service.ts';
import type { Sql } from '../platform/db/types.ts';

/** A merchant's endpoint for tests: a real HTTP server on 127.0.0.1 that records what it gets. */

/**
 * What a service needs to deliver to such a receiver: plain http, and 127.0.0.1 on the allow-list
 * (loopback is refused otherwise, src/webhooks/address-policy.ts).
 */
export const loopbackReceiverEnv = {
  MERCHANT_WEBHOOK_ALLOW_HTTP: 'true',
  MERCHANT_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
} as const;

export type ReceivedRequest = {
  headers: Record<string, string>;
  body: string;
  answered: number | 'dropped' | 'hung';
};

/** What to do with a request: answer with a status (and optional body), drop the connection, or never answer. */
export type Behaviour = (request: {
  headers: Record<string, string>;
  body: string;
  url: string;
}) => { status: number; body?: string; headers?: Record<string, string> } | 'drop' | 'hang';

export type MerchantServer = {
  url: string;
  received: ReceivedRequest[];
  behave(next: Behaviour): void;
  close(): Promise<void>;
};

function flatHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (typeof value === 'string') headers[name] = value;
  }
  return headers;
}

export async function startMerchantServer(initial: Behaviour): Promise<MerchantServer> {
  let behaviour = initial;
  const received: ReceivedRequest[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const headers = flatHeaders(request);
      const body = Buffer.concat(chunks).toString('utf8');
      const answer = behaviour({ headers, body, url: request.url ?? '/' });
      if (answer === 'drop') {
        received.push({ headers, body, answered: 'dropped' });
        request.socket.destroy();
        return;
      }
      if (answer === 'hang') {
        received.push({ headers, body, answered: 'hung' });
        return;
      }
      received.push({ headers, body, answered: answer.status });
      response.writeHead(answer.status, answer.headers ?? {});
      response.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/settledesk`,
    received,
    behave: (next) => {
      behaviour = next;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}

export async function merchantAccount(sql: Sql, ownerRef: string | null): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into accounts (type, asset, owner_ref) values ('merchant', 'XLM', ${ownerRef}::text) returning id`;
  if (!row) throw new Error('no account inserted');
  return row.id;
}

export async function registerEndpoint(
  service: TestService,
  body: { url: string; eventTypes: string[]; ownerRef: string | null },
): Promise<{ id: string; secret: string }> {
  const response = await service.app.inject({
    method: 'POST',
    url: '/v1/webhook-endpoints',
    payload: body,
    headers: { authorization: `Bearer ${await service.token('admin', 'ada')}` },
  });
  if (response.statusCode !== 201) throw new Error(`endpoint not registered: ${response.body}`);
  return response.json();
}

export function depositInput(accountId: string, amount: string) {
  return {
    provider: 'stellar',
    reference: `test-${randomUUID()}`,
    accountId,
    asset: 'XLM',
    amount,
    source: 'chain' as const,
  };
}
