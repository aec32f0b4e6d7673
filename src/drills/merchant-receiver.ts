import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OperatingError } from '../platform/errors.ts';
import { secretKey, sign } from '../webhooks/signing.ts';

/** What a merchant's endpoint accepts in one request, as settledesk's own bodies are far smaller. */
const bodyBytesMax = 64 * 1024;

export type ReceivedDelivery = { id: string; type: string; data: Record<string, unknown> };

/**
 * A merchant's webhook endpoint for the drills: a real HTTP server on 127.0.0.1 that verifies each
 * request's Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
 * with the endpoint's secret, as src/webhooks/signing.ts pins it to the specification's test
 * vector), answers 204 to a verified one and 401 otherwise, and keeps what it got.
 */
export type MerchantReceiver = {
  url: string;
  /** The secret settledesk answered when the endpoint was registered; nothing verifies before it. */
  useSecret(secret: string): void;
  verified: ReceivedDelivery[];
  refused: number;
  close(): Promise<void>;
};

class ReceiverError extends OperatingError {
  override name = 'ReceiverError';
}

function header(request: IncomingMessage, name: string): string {
  const value = request.headers[name];
  return typeof value === 'string' ? value : '';
}

/** Whether one of the space-separated `v1,<base64>` signatures is ours for this message. */
function signedBy(secret: string, request: IncomingMessage, body: string): boolean {
  const timestampSeconds = Number(header(request, 'webhook-timestamp'));
  if (!Number.isInteger(timestampSeconds)) return false;
  const expected = Buffer.from(
    sign(secretKey(secret), { id: header(request, 'webhook-id'), timestampSeconds, body }),
  );
  return header(request, 'webhook-signature')
    .split(' ')
    .some((candidate) => {
      const given = Buffer.from(candidate);
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}

export async function startMerchantReceiver(): Promise<MerchantReceiver> {
  let secret: string | undefined;
  const receiver = {
    verified: [] as ReceivedDelivery[],
    refused: 0,
  };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= bodyBytesMax) chunks.push(chunk);
    });
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (secret === undefined || bytes > bodyBytesMax || !signedBy(secret, request, body)) {
        receiver.refused += 1;
        response.writeHead(401).end();
        return;
      }
      const event = JSON.parse(body) as { type: string; data: Record<string, unknown> };
      receiver.verified.push({ id: header(request, 'webhook-id'), type: event.type, data: event.data });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo | null;
  if (address === null) throw new ReceiverError('the merchant receiver did not get a port');
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${address.port}/hooks/settledesk`,
    useSecret: (next: string) => {
      secret = next;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
