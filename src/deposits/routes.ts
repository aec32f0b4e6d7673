import { Type } from 'typebox';
import { assetLengthMax } from '../ledger/routes.ts';
import { operatorRoles } from '../platform/auth/roles.ts';
import type { Config } from '../platform/config.ts';
import type { Sql } from '../platform/db/types.ts';
import type { App } from '../platform/http/app.ts';
import { problemResponse } from '../platform/http/problem-schema.ts';
import { sendProblem } from '../platform/http/problems.ts';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import type { Logger } from '../platform/logging.ts';
import { selectDeadLetters } from './data.ts';
import { createIntent } from './intents.ts';
import { pendingProofsFrom } from './metrics.ts';
import { proofNetwork, verifyProof } from './proofs.ts';
import type { ProviderSecrets } from './provider-secrets.ts';
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

const WebhookOutcome = Type.Object({
  outcome: Type.Union([Type.Literal('credited'), Type.Literal('replay'), Type.Literal('held')]),
  depositId: Uuid(),
  webhookId: Uuid(),
});

/** Every status the provider webhook answers; a 4xx refusal of the content is also dead-lettered (`webhookId`). */
const webhookResponses = {
  201: { ...WebhookOutcome, description: 'credited now' },
  200: {
    ...WebhookOutcome,
    description:
      'the same payload was received before (a replay), or held in deposit_suspense: its reference was never issued or it disagrees with its intent',
  },
  400: problemResponse('malformed JSON, a missing or unstorable field, or an amount we do not accept'),
  401: problemResponse('the signature is missing or does not verify, or its timestamp is stale'),
  403: problemResponse('the provider is disabled'),
  404: problemResponse(
    'no such provider, or the intent account is not a customer or merchant account (dead-lettered)',
  ),
  409: problemResponse('the reference was received before with another payload; nothing is kept'),
  413: problemResponse('the body is too large'),
  415: problemResponse('the body is not application/json'),
  422: problemResponse('the asset is not enabled (dead-lettered)'),
  503: problemResponse('not processed now and nothing kept (payments read_only, a database failure): retry', {
    'retry-after': { type: 'integer', minimum: 1, description: 'seconds to wait before sending it again' },
  }),
};

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

export function depositRoutes(sql: Sql, config: Config, secrets: ProviderSecrets, logger: Logger) {
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
            response: webhookResponses,
          },
        },
        async (request, reply) => {
          const result = await receiveProviderWebhook(sql, config, secrets, logger, {
            provider: request.params.provider,
            body: request.body,
            signature: request.headers[signatureHeader] as string | undefined,
            nowSeconds: Math.floor(Date.now() / 1_000),
            requestId: request.id,
          });
          if (result.status === 503) {
            reply.header('retry-after', String(result.retryAfterSeconds));
            return sendProblem(reply, result.problem);
          }
          return reply.code(result.status).send(result.body);
        },
      );
    });
    const proofs = proofNetwork(config);
    pendingProofsFrom(sql);
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
              amount: Type.Optional(
                Type.String({
                  minLength: 1,
                  maxLength: 40,
                  description:
                    'the amount the customer is to pay (external providers): a webhook with another is held in suspense',
                }),
              ),
            },
            { additionalProperties: false },
          ),
        },
      },
      async (request, reply) => {
        const intent = await createIntent(sql, {
          accountId: request.body.accountId,
          provider: request.body.provider,
          amount: request.body.amount,
          actor: request.principal?.subject ?? '',
          hotWallet: proofs.hotWallet,
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
            'A customer names a transaction as proof of payment: it is checked on chain and credited once, or flagged as suspicious with the reason; when no Stellar path can tell yet, it is kept pending (202) and checked again by a job.',
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
      async (request, reply) => {
        const verdict = await verifyProof(
          sql,
          { ...request.body, submittedBy: request.principal?.subject ?? '' },
          proofs,
        );
        // Pending: accepted, and decided later by the verify_payment_proof job.
        return reply.code(verdict.verdict === 'pending' ? 202 : 200).send(verdict);
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
