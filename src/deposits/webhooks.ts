import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import type { Config } from '../platform/config.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError, type Problem, problemFor } from '../platform/errors.ts';
import { freeTextMessage, isFreeText } from '../platform/http/schemas.ts';
import { isUuid } from '../platform/ids.ts';
import type { Logger } from '../platform/logging.ts';
import { findingsCreated } from '../reconciliation/metrics.ts';
import { creditProviderDeposit } from './bound.ts';
import type { CreditOutcome } from './credit.ts';
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
import type { ProviderSecrets } from './provider-secrets.ts';
import { verifySignature } from './signature.ts';

/**
 * `POST /v1/webhooks/deposits/{provider}`: authenticate (signature), parse, then credit in one
 * transaction with the webhook's record. A webhook whose content is refused is answered with its
 * 4xx problem and kept as a dead letter until an operator replays it; one that cannot be processed
 * now (the kill switch, the database, a bug) is answered 503 with `Retry-After` and not kept, so
 * the provider's retry delivers it.
 */

export const referenceLengthMax = 200;

export type ProviderPayload = { reference: string; accountId: string; asset: string; amount: string };

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

/** Returns the provider's name once it is known, enabled, and the signature verifies. */
async function authenticate(
  sql: Sql,
  config: Config,
  secrets: ProviderSecrets,
  input: { provider: string; body: string; signature: string | undefined; nowSeconds: number },
): Promise<string> {
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
    secrets: secrets.secretsFor(provider.name, config.deposits.webhookSecrets[provider.name] ?? []),
    nowSeconds: input.nowSeconds,
    toleranceSeconds: config.deposits.webhookToleranceSeconds,
  });
  if (check.ok) return provider.name;
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

/**
 * Seconds a provider is asked to wait before sending a webhook we could not take again. Short:
 * the usual causes (a lock held a little too long, a dropped connection, a failover) pass within
 * seconds, and the provider's own backoff lengthens the wait if they do not.
 */
const webhookRetryAfterSeconds = 30;
/** Stack frames a log line keeps of a failure: enough to find where it was thrown. */
const stackFramesMax = 5;

/**
 * A refusal of the webhook's content (a 4xx domain error) is final for these bytes: the provider
 * must not resend them. Anything else (the kill switch, the database, a bug of ours) may pass, so
 * the provider is asked to retry and nothing is kept.
 */
function isRefusal(error: unknown): error is DomainError {
  return error instanceof DomainError && error.status < 500;
}

/**
 * Refusals a person must look at go to the dead-letter queue, kept with their body as the record
 * and replayable once the cause is fixed. A reference mismatch is not one: a replay can only be
 * refused again, and the correction is an adjustment.
 */
function isDeadLetter(error: DomainError): boolean {
  return error.type !== 'webhook/reference-mismatch';
}

/** What a dead letter keeps of its refusal: the problem type and its detail, both safe to show. */
function deadLetterError(error: DomainError): string {
  return `${error.type}: ${error.message}`;
}

/**
 * What a log line may keep of an unexpected failure: its class, SQLSTATE and where it was thrown.
 * Never its message, which for a database error can quote the request.
 */
function failureSummary(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { name: typeof error };
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  const frames = (error.stack ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '))
    .slice(0, stackFramesMax);
  return { name: error.name, code, frames };
}

export type WebhookResult =
  | { status: 200 | 201; body: { outcome: CreditOutcome['kind']; depositId: string; webhookId: string } }
  | { status: 503; problem: Problem; retryAfterSeconds: number };

type ReceiveInput = {
  provider: string;
  body: string;
  signature: string | undefined;
  nowSeconds: number;
  requestId: string;
};

/**
 * Answers a refusal with its own problem (thrown, to the error handler) and anything else with a
 * 503 the provider retries: a lock timeout or a lost connection must not cost a manual replay.
 */
export async function receiveProviderWebhook(
  sql: Sql,
  config: Config,
  secrets: ProviderSecrets,
  logger: Logger,
  input: ReceiveInput,
): Promise<WebhookResult> {
  // The metric label is a provider's name only once it is known to exist: URLs are unbounded.
  let provider = 'unknown';
  try {
    provider = await authenticate(sql, config, secrets, input);
    return await processWebhook(sql, logger, provider, input);
  } catch (error) {
    if (isRefusal(error)) throw error;
    return retryLater(logger, provider, input.requestId, error);
  }
}

async function processWebhook(
  sql: Sql,
  logger: Logger,
  provider: string,
  input: ReceiveInput,
): Promise<WebhookResult> {
  const payload = parsePayload(input.body);
  const webhookId = randomUUID();
  try {
    const outcome = await withTransaction(sql, async (tx) => {
      const credit = await creditProviderDeposit(tx, { ...payload, provider }, input.requestId);
      await insertInboundWebhook(tx, {
        id: webhookId,
        provider,
        body: input.body,
        state: 'processed',
        outcome: credit.kind,
        error: null,
      });
      return credit;
    });
    depositWebhooks.inc({ provider, outcome: outcome.kind });
    if (outcome.kind === 'held') {
      findingsCreated.inc({ kind: 'deposit_mismatch' });
      logger.warn(
        { provider, requestId: input.requestId, depositId: outcome.deposit.id, webhookId },
        'deposit webhook held in suspense',
      );
    }
    return {
      status: outcome.kind === 'credited' ? 201 : 200,
      body: { outcome: outcome.kind, depositId: outcome.deposit.id, webhookId },
    };
  } catch (error) {
    if (!isRefusal(error)) throw error;
    if (!isDeadLetter(error)) {
      depositWebhooks.inc({ provider, outcome: 'mismatch' });
      logger.warn(
        { provider, requestId: input.requestId, problem: error.type, depositId: error.extensions.depositId },
        'deposit webhook refused',
      );
      throw error;
    }
    await insertInboundWebhook(sql, {
      id: webhookId,
      provider,
      body: input.body,
      state: 'dead_letter',
      outcome: null,
      error: deadLetterError(error),
    });
    depositWebhooks.inc({ provider, outcome: 'dead_letter' });
    logger.warn(
      { webhookId, provider, requestId: input.requestId, problem: error.type },
      'deposit webhook dead-lettered',
    );
    await refreshDeadLetterGauge(sql, logger);
    throw new DomainError(error.type, error.message, { ...error.extensions, webhookId });
  }
}

/** Nothing was kept: the provider's retry is the only copy, so it is asked for one. */
function retryLater(logger: Logger, provider: string, requestId: string, error: unknown): WebhookResult {
  depositWebhooks.inc({ provider, outcome: 'unavailable' });
  if (error instanceof DomainError) {
    // The kill switch or another deliberate stop: expected, and its detail is safe to send.
    logger.info(
      { provider, requestId, problem: error.type },
      'deposit webhook deferred: the provider retries',
    );
    return {
      status: 503,
      problem: problemFor(error.type, error.message, { ...error.extensions }),
      retryAfterSeconds: webhookRetryAfterSeconds,
    };
  }
  logger.error(
    { provider, requestId, problem: 'service/unavailable', failure: failureSummary(error) },
    'deposit webhook deferred: the provider retries',
  );
  return {
    status: 503,
    problem: problemFor(
      'service/unavailable',
      'the deposit could not be processed now and nothing was kept: send the same webhook again after Retry-After',
    ),
    retryAfterSeconds: webhookRetryAfterSeconds,
  };
}

/** The gauge is a convenience: failing to count must not turn a kept dead letter into a retry. */
async function refreshDeadLetterGauge(sql: Sql, logger: Logger): Promise<void> {
  try {
    webhookDeadLetters.set(await countDeadLetters(sql));
  } catch (error) {
    logger.warn({ failure: failureSummary(error) }, 'deposit webhook dead letters not counted');
  }
}

/** Processes a dead letter again (its signature was verified when it arrived): at most one credit. */
export async function replayDeadLetter(sql: Sql, id: string, actor: string): Promise<InboundWebhookRow> {
  let replayed: InboundWebhookRow;
  try {
    replayed = await withTransaction(sql, async (tx) => {
      const webhook = await claimDeadLetter(tx, id);
      if (!webhook)
        throw new DomainError('webhook/not-dead-lettered', `webhook ${id} is not in the dead-letter queue`);
      const payload = parsePayload(webhook.body);
      const credit = await creditProviderDeposit(tx, { ...payload, provider: webhook.provider }, undefined);
      const outcome = `${credit.kind} by ${actor}`;
      await updateInboundWebhook(tx, id, { state: 'replayed', outcome, error: null });
      await appendAudit(tx, {
        actor,
        action: 'deposit.dead_letter_replayed',
        subjectType: 'inbound_webhook',
        subjectId: id,
        before: { state: webhook.state },
        after: { state: 'replayed', outcome, depositId: credit.deposit.id },
      });
      return { ...webhook, state: 'replayed' as const, outcome, error: null, attempts: webhook.attempts + 1 };
    });
  } catch (error) {
    // Refused again: it stays a dead letter, with the new reason. Anything else changed nothing
    // and is the error handler's (a 500 with the request id); its message is never stored.
    if (error instanceof DomainError && error.type !== 'webhook/not-dead-lettered') {
      await recordReplayFailure(sql, id, deadLetterError(error));
    }
    throw error;
  }
  depositWebhooks.inc({ provider: replayed.provider, outcome: 'replayed' });
  webhookDeadLetters.set(await countDeadLetters(sql));
  return replayed;
}
