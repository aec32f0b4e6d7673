import { randomUUID } from 'node:crypto';
import type { Config } from '../platform/config.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { freeTextMessage, isFreeText } from '../platform/http/schemas.ts';
import { isUuid } from '../platform/ids.ts';
import type { Logger } from '../platform/logging.ts';
import { type CreditOutcome, creditDeposit } from './credit.ts';
import {
  claimDeadLetter,
  countDeadLetters,
  type InboundWebhookRow,
  insertInboundWebhook,
  insertSecurityEvent,
  recordReplayFailure,
  selectProvider,
  updateInboundWebhook,
} from './data.ts';
import { depositWebhooks, webhookDeadLetters, webhookSignatureFailures } from './metrics.ts';
import { verifySignature } from './signature.ts';

/**
 * `POST /v1/webhooks/deposits/{provider}`: authenticate (signature), parse, then credit in one
 * transaction with the webhook's record. A webhook that verifies but cannot be processed is kept
 * as a dead letter (answered 202, so the provider stops retrying) until an operator replays it.
 */

export const referenceLengthMax = 200;

export type ProviderPayload = { reference: string; accountId: string; asset: string; amount: string };

export type WebhookResult =
  | { status: 200 | 201; body: { outcome: CreditOutcome['kind']; depositId: string; webhookId: string } }
  | { status: 202; body: { outcome: 'dead_letter'; webhookId: string; error: string } };

export function parsePayload(body: string): ProviderPayload {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new DomainError('request/malformed-body', 'the body is not JSON');
  }
  const candidate = parsed as Partial<Record<keyof ProviderPayload, unknown>> | null;
  const missing = (['reference', 'accountId', 'asset', 'amount'] as const).filter(
    (field) => typeof candidate?.[field] !== 'string' || candidate[field] === '',
  );
  if (missing.length > 0)
    throw new DomainError('request/validation', `missing or not a string: ${missing.join(', ')}`);
  const payload = candidate as ProviderPayload;
  const unprintable = (['reference', 'accountId', 'asset', 'amount'] as const).filter(
    (field) => !isFreeText(payload[field]),
  );
  if (unprintable.length > 0) {
    throw new DomainError('request/validation', `${unprintable.join(', ')}: ${freeTextMessage}`);
  }
  if (payload.reference.length > referenceLengthMax) {
    throw new DomainError('request/validation', `reference is longer than ${referenceLengthMax} characters`);
  }
  if (!isUuid(payload.accountId)) throw new DomainError('request/validation', 'accountId must be a uuid');
  return {
    reference: payload.reference,
    accountId: payload.accountId,
    asset: payload.asset,
    amount: payload.amount,
  };
}

async function authenticate(
  sql: Sql,
  config: Config,
  input: { provider: string; body: string; signature: string | undefined; nowSeconds: number },
): Promise<void> {
  const provider = await selectProvider(sql, input.provider);
  if (provider?.kind !== 'external') {
    depositWebhooks.inc({ provider: 'unknown', outcome: 'rejected' });
    throw new DomainError('webhook/unknown-provider', `no deposit provider ${input.provider}`);
  }
  if (provider.mode === 'disabled') {
    depositWebhooks.inc({ provider: provider.name, outcome: 'rejected' });
    throw new DomainError('webhook/provider-disabled', `provider ${provider.name} is disabled`);
  }
  const check = verifySignature({
    header: input.signature,
    body: input.body,
    secrets: config.deposits.webhookSecrets[provider.name] ?? [],
    nowSeconds: input.nowSeconds,
    toleranceSeconds: config.deposits.webhookToleranceSeconds,
  });
  if (check.ok) return;
  webhookSignatureFailures.inc({ provider: provider.name, reason: check.reason });
  depositWebhooks.inc({ provider: provider.name, outcome: 'rejected' });
  await insertSecurityEvent(sql, {
    kind: check.reason === 'stale' ? 'webhook.stale_timestamp' : 'webhook.bad_signature',
    source: `provider:${provider.name}`,
    detail: { reason: check.reason, bodyBytes: Buffer.byteLength(input.body) },
  });
  if (check.reason === 'stale')
    throw new DomainError('webhook/stale-timestamp', 'the signature timestamp is too old or in the future');
  throw new DomainError('webhook/bad-signature', 'the webhook signature does not verify');
}

/** Domain refusals a person must look at: the webhook goes to the dead-letter queue, not back to the provider. */
function isDeadLetter(error: unknown): boolean {
  return !(error instanceof DomainError && error.type === 'webhook/reference-mismatch');
}

export async function receiveProviderWebhook(
  sql: Sql,
  config: Config,
  logger: Logger,
  input: {
    provider: string;
    body: string;
    signature: string | undefined;
    nowSeconds: number;
    requestId: string;
  },
): Promise<WebhookResult> {
  await authenticate(sql, config, input);
  const payload = parsePayload(input.body);
  const webhookId = randomUUID();
  try {
    const outcome = await sql.begin(async (tx) => {
      const credit = await creditDeposit(
        tx,
        { ...payload, provider: input.provider, source: 'webhook' },
        input.requestId,
      );
      await insertInboundWebhook(tx, {
        id: webhookId,
        provider: input.provider,
        body: input.body,
        state: 'processed',
        outcome: credit.kind,
        error: null,
      });
      return credit;
    });
    depositWebhooks.inc({ provider: input.provider, outcome: outcome.kind });
    return {
      status: outcome.kind === 'credited' ? 201 : 200,
      body: { outcome: outcome.kind, depositId: outcome.deposit.id, webhookId },
    };
  } catch (error) {
    if (!isDeadLetter(error)) {
      depositWebhooks.inc({ provider: input.provider, outcome: 'mismatch' });
      throw error;
    }
    const message = error instanceof Error ? error.message : String(error);
    await insertInboundWebhook(sql, {
      id: webhookId,
      provider: input.provider,
      body: input.body,
      state: 'dead_letter',
      outcome: null,
      error: message,
    });
    depositWebhooks.inc({ provider: input.provider, outcome: 'dead_letter' });
    webhookDeadLetters.set(await countDeadLetters(sql));
    logger.error({ webhookId, provider: input.provider, err: error }, 'deposit webhook dead-lettered');
    return { status: 202, body: { outcome: 'dead_letter', webhookId, error: message } };
  }
}

/** Processes a dead letter again (its signature was verified when it arrived): at most one credit. */
export async function replayDeadLetter(sql: Sql, id: string, actor: string): Promise<InboundWebhookRow> {
  const replayed = await sql
    .begin(async (tx) => {
      const webhook = await claimDeadLetter(tx, id);
      if (!webhook)
        throw new DomainError('webhook/not-dead-lettered', `webhook ${id} is not in the dead-letter queue`);
      const payload = parsePayload(webhook.body);
      const credit = await creditDeposit(tx, { ...payload, provider: webhook.provider, source: 'webhook' });
      const outcome = `${credit.kind} by ${actor}`;
      await updateInboundWebhook(tx, id, { state: 'replayed', outcome, error: null });
      return { ...webhook, state: 'replayed' as const, outcome, error: null, attempts: webhook.attempts + 1 };
    })
    .catch(async (error: unknown) => {
      if (error instanceof DomainError && error.type === 'webhook/not-dead-lettered') throw error;
      // Still failing: it stays a dead letter, with the new error.
      const message = error instanceof Error ? error.message : String(error);
      await recordReplayFailure(sql, id, message);
      throw error;
    });
  depositWebhooks.inc({ provider: replayed.provider, outcome: 'replayed' });
  webhookDeadLetters.set(await countDeadLetters(sql));
  return replayed;
}
