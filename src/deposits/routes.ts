import { Type } from 'typebox';
import { assetLengthMax } from '../ledger/routes.ts';
import { operatorRoles } from '../platform/auth/roles.ts';
import type { Config } from '../platform/config.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import type { App } from '../platform/http/app.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import type { Logger } from '../platform/logging.ts';
import { findStellar } from '../stellar/connect.ts';
import type { StellarEndpoints } from '../stellar/endpoints.ts';
import { loadWallet } from '../stellar/wallet.ts';
import { selectDeadLetters } from './data.ts';
import { createIntent } from './intents.ts';
import { verifyProof } from './proofs.ts';
import { signatureHeader } from './signature.ts';
import { receiveProviderWebhook, replayDeadLetter } from './webhooks.ts';

export const deadLettersPageMax = 200;

const WebhookView = Type.Object({
  id: Type.String(),
  provider: Type.String(),
  state: Type.String(),
  outcome: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  attempts: Type.Integer(),
  receivedAt: Type.String({ format: 'date-time' }),
});

function webhookJson(row: {
  id: string;
  provider: string;
  state: string;
  outcome: string | null;
  error: string | null;
  attempts: number;
  receivedAt: Date;
}) {
  const { id, provider, state, outcome, error, attempts } = row;
  return { id, provider, state, outcome, error, attempts, receivedAt: row.receivedAt.toISOString() };
}

export function depositRoutes(sql: Sql, config: Config, logger: Logger) {
  return async (app: App): Promise<void> => {
    // The signature covers the exact bytes sent: this scope keeps JSON bodies as raw text.
    await app.register(async (scope) => {
      scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) =>
        done(null, body),
      );
      (scope as unknown as App).post(
        '/v1/webhooks/deposits/:provider',
        {
          config: { access: 'public' },
          schema: {
            tags: ['deposits'],
            description:
              'A deposit provider reports a deposit. Authenticated by `X-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`. Body: {reference, accountId, asset, amount}.',
            params: Type.Object({ provider: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,39}$' }) }),
            body: Type.String({
              maxLength: 65_536,
              description: 'JSON {reference, accountId, asset, amount}',
            }),
          },
        },
        async (request, reply) => {
          const result = await receiveProviderWebhook(sql, config, logger, {
            provider: request.params.provider,
            body: request.body,
            signature: request.headers[signatureHeader] as string | undefined,
            nowSeconds: Math.floor(Date.now() / 1_000),
            requestId: request.id,
          });
          return reply.code(result.status).send(result.body);
        },
      );
    });
    let hotWallet: Promise<string> | undefined;
    let stellar: Promise<StellarEndpoints> | undefined;
    // A failed lookup is not cached: the next request tries again once Stellar is reachable.
    const stellarEndpoints = async (): Promise<StellarEndpoints> => {
      stellar ??= findStellar(config);
      try {
        return await stellar;
      } catch (error) {
        stellar = undefined;
        logger.warn({ err: error }, 'Stellar endpoints could not be found');
        throw new DomainError(
          'service/unavailable',
          'the Stellar network is not reachable from this process',
        );
      }
    };
    const hotWalletOf = () => {
      hotWallet ??= loadWallet(config).then((wallet) => wallet.hotWallet.publicKey());
      return hotWallet;
    };
    app.post(
      '/v1/deposits/intents',
      {
        config: { access: ['service', 'operator', 'admin'] },
        schema: {
          tags: ['deposits'],
          description:
            'How an account pays in: the routed provider, and its address and memo or its reference.',
          body: Type.Object(
            {
              accountId: Uuid(),
              provider: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,39}$' })),
            },
            { additionalProperties: false },
          ),
        },
      },
      async (request, reply) => {
        const intent = await createIntent(sql, {
          accountId: request.body.accountId,
          provider: request.body.provider,
          actor: request.principal?.subject ?? '',
          hotWallet: hotWalletOf,
        });
        return reply.code(201).send(intent);
      },
    );
    app.post(
      '/v1/deposits/verify-proof',
      {
        config: { access: ['service', 'operator', 'admin'] },
        schema: {
          tags: ['deposits'],
          description:
            'A customer names a transaction as proof of payment: it is checked on chain and credited once, or flagged as suspicious with the reason.',
          body: Type.Object(
            {
              transactionHash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
              accountId: Uuid(),
              asset: FreeText({ minLength: 1, maxLength: assetLengthMax }),
              amount: Type.String({ minLength: 1, maxLength: 40 }),
            },
            { additionalProperties: false },
          ),
        },
      },
      async (request) => {
        const endpoints = await stellarEndpoints();
        return verifyProof(
          sql,
          { ...request.body, submittedBy: request.principal?.subject ?? '' },
          {
            horizonUrls: endpoints.horizonUrls,
            networkPassphrase: endpoints.networkPassphrase,
            hotWallet: hotWalletOf,
          },
        );
      },
    );
    app.get(
      '/v1/webhooks/dead-letters',
      {
        config: { access: operatorRoles },
        schema: {
          tags: ['deposits'],
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: deadLettersPageMax, default: 50 }),
          }),
          response: { 200: Type.Object({ items: Type.Array(WebhookView) }) },
        },
      },
      async (request) => ({ items: (await selectDeadLetters(sql, request.query.limit)).map(webhookJson) }),
    );
    app.post(
      '/v1/webhooks/dead-letters/:id/replay',
      {
        config: { access: operatorRoles },
        schema: {
          tags: ['deposits'],
          params: Type.Object({ id: Uuid() }),
          response: { 200: WebhookView },
        },
      },
      async (request) =>
        webhookJson(await replayDeadLetter(sql, request.params.id, request.principal?.subject ?? '')),
    );
  };
}
