import { randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { appendAudit } from '../audit/audit.ts';
import type { MerchantWebhookConfig } from '../platform/config.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { enqueueJob } from '../platform/jobs.ts';
import type { Logger } from '../platform/logging.ts';
import { type EndpointAddressPolicy, guardedLookup, refusedAddressErrorCode } from './address-policy.ts';
import {
  claimDelivery,
  type DeliveryClaim,
  insertAttempt,
  markDeadLettered,
  markDelivered,
  scheduleRetry,
} from './data.ts';
import { deliverJobAttemptsMax, deliverTask, deliveryJobKeyPrefix } from './events.ts';
import { type DeliveryOutcome, merchantWebhookDeliveries } from './metrics.ts';
import type { EndpointSecretBox } from './secrets.ts';
import { secretKey, signedHeaders } from './signing.ts';

/**
 * One delivery attempt: claim the delivery (the lease), POST the signed event, record the attempt
 * and decide what follows (delivered, retry later, or dead letter), then count and log the outcome.
 * A failed HTTP attempt is not an error of the job: the retry is scheduled here, with our backoff.
 */

/** Each retry waits `backoffFactor` times longer than the one before, up to the configured cap. */
export const backoffFactor = 4;
/** A lease outlives the request timeout by this much, so a slow but live attempt keeps it. */
export const leaseMarginMs = 30_000;
/** How much of a merchant's response we keep in the delivery log. */
export const responseBodyBytesMax = 2_048;
export const errorLengthMax = 500;
const userAgent = 'settledesk-webhooks/1';

export type DeliveryOptions = Pick<
  MerchantWebhookConfig,
  'attemptsMax' | 'timeoutMs' | 'backoffBaseMs' | 'backoffCapMs'
>;

export type DeliveryDeps = {
  sql: Sql;
  options: DeliveryOptions;
  secrets: () => Promise<EndpointSecretBox>;
  /** Where an endpoint may point: checked again at every attempt, on the resolved addresses. */
  policy: EndpointAddressPolicy;
  logger: Logger;
};

/**
 * The wait before the next attempt after the `attempt`-th failure of the current budget: capped
 * exponential, with "equal jitter" (between half and all of the step), so that deliveries that
 * failed together (an endpoint outage) do not all retry in the same instant, while the schedule
 * stays predictable enough to document.
 */
export function retryDelayMs(
  attempt: number,
  options: DeliveryOptions,
  random: () => number = Math.random,
): number {
  const step = Math.min(options.backoffCapMs, options.backoffBaseMs * backoffFactor ** (attempt - 1));
  return Math.round(step / 2 + (random() * step) / 2);
}

export type AttemptResult = {
  ok: boolean;
  statusCode: number | null;
  durationMs: number;
  error: string | null;
  responseBody: string | null;
};

/** PostgreSQL text cannot hold NUL; a merchant's response can. */
function storable(text: string, lengthMax: number): string {
  return text.replaceAll('\u0000', '\uFFFD').slice(0, lengthMax);
}

/** Reads at most responseBodyBytesMax of the body, then drops the rest (and the connection). */
async function readBounded(response: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).byteLength;
      if (size >= responseBodyBytesMax) break;
    }
  } catch {
    // The status decided the attempt; a body cut short (timeout, reset) is only less to log.
  } finally {
    response.destroy();
  }
  if (chunks.length === 0) return null;
  return storable(
    Buffer.concat(chunks).subarray(0, responseBodyBytesMax).toString('utf8'),
    responseBodyBytesMax,
  );
}

function describeFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no response within ${timeoutMs} ms`;
  }
  const code = error instanceof Error && 'code' in error ? `${String(error.code)}: ` : '';
  return `${code}${error instanceof Error ? error.message : String(error)}`;
}

/**
 * POSTs once. Redirects are not followed: a 3xx is a failed attempt, like any other non-2xx. With
 * a policy (merchant endpoints), an address literal is checked before connecting and a name is
 * connected to only the addresses the policy's lookup resolved and checked (no DNS rebinding).
 */
export async function postSigned(
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  policy?: EndpointAddressPolicy,
): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const failed = (error: unknown): AttemptResult => ({
    ok: false,
    statusCode: null,
    durationMs: elapsed(),
    error: storable(describeFailure(error, timeoutMs), errorLengthMax),
    responseBody: null,
  });
  const target = new URL(url);
  const literal = policy?.literalRefusal(target.hostname);
  if (literal !== undefined) {
    return failed(
      Object.assign(new Error(`refused: ${target.hostname} is ${literal} (MERCHANT_WEBHOOK_ALLOWED_HOSTS)`), {
        code: refusedAddressErrorCode,
      }),
    );
  }
  const signal = AbortSignal.timeout(timeoutMs);
  let response: IncomingMessage;
  try {
    response = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': userAgent,
          'content-length': String(Buffer.byteLength(body)),
          ...headers,
        },
        // A connection per attempt: each one is made to an address checked for it.
        agent: false,
        signal,
        ...(policy ? { lookup: guardedLookup(policy) } : {}),
      });
      request.once('response', resolve);
      request.once('error', reject);
      request.end(body);
    });
  } catch (error) {
    return failed(signal.aborted ? signal.reason : error);
  }
  const responseBody = await readBounded(response);
  const status = response.statusCode ?? 0;
  const ok = status >= 200 && status < 300;
  const location = response.headers.location;
  const error = ok
    ? null
    : status >= 300 && status < 400
      ? storable(`HTTP ${status}: redirect to ${location ?? '(no location)'} not followed`, errorLengthMax)
      : `HTTP ${status}`;
  return { ok, statusCode: status, durationMs: elapsed(), error, responseBody };
}

export type DeliveryRun =
  | { outcome: DeliveryOutcome; attempt: number; result: AttemptResult | undefined }
  | { outcome: 'skipped' };

/**
 * Runs one attempt of a delivery if it is pending, due and not being sent by another run; a
 * delivered or dead-lettered delivery, or one leased by another run, is left alone ('skipped').
 */
export async function deliverOnce(deps: DeliveryDeps, deliveryId: string): Promise<DeliveryRun> {
  const { sql, options } = deps;
  const token = randomUUID();
  const claim = await claimDelivery(sql, deliveryId, token, options.timeoutMs + leaseMarginMs);
  if (!claim) {
    deps.logger.debug({ deliveryId }, 'merchant webhook delivery not due or not pending: skipped');
    return { outcome: 'skipped' };
  }
  if (!claim.endpointEnabled) {
    return finish(deps, claim, undefined, 'the endpoint is disabled');
  }
  const key = await openKeys(deps, claim);
  if (key === undefined) {
    const error =
      'the endpoint secret cannot be decrypted: is SETTLEDESK_KEYRING_KEY the one it was sealed with?';
    return finish(
      deps,
      claim,
      { ok: false, statusCode: null, durationMs: 0, error, responseBody: null },
      error,
    );
  }
  const message = { id: claim.eventId, timestampSeconds: Math.floor(Date.now() / 1_000), body: claim.body };
  const result = await postSigned(
    claim.url,
    signedHeaders(key, message),
    claim.body,
    options.timeoutMs,
    deps.policy,
  );
  return finish(deps, claim, result, result.error ?? '');
}

/**
 * The keys to sign with: the newest secret, then the previous one during a rotation's overlap. A
 * secret that does not open (another keyring key) fails the attempt like a refused request, so
 * the delivery still ends in the dead-letter queue instead of being claimed again forever.
 */
async function openKeys(deps: DeliveryDeps, claim: DeliveryClaim): Promise<Buffer[] | undefined> {
  try {
    const box = await deps.secrets();
    const sealed = claim.previousSecretSealed
      ? [claim.secretSealed, claim.previousSecretSealed]
      : [claim.secretSealed];
    return sealed.map((each) => secretKey(box.open(each)));
  } catch (error) {
    deps.logger.error({ deliveryId: claim.id, err: error }, 'merchant webhook endpoint secret does not open');
    return undefined;
  }
}

async function finish(
  deps: DeliveryDeps,
  claim: DeliveryClaim,
  result: AttemptResult | undefined,
  error: string,
): Promise<DeliveryRun> {
  const { sql, options } = deps;
  const used = claim.attempt - claim.budgetFrom;
  const outcome = await withTransaction(sql, async (tx): Promise<DeliveryOutcome | 'lease_lost'> => {
    if (result) {
      await insertAttempt(tx, {
        deliveryId: claim.id,
        attempt: claim.attempt,
        statusCode: result.statusCode,
        durationMs: result.durationMs,
        error: result.error,
        responseBody: result.responseBody,
      });
      if (result.ok)
        return (await markDelivered(tx, claim.id, claim.leaseToken)) ? 'delivered' : 'lease_lost';
    }
    if (result === undefined || used >= options.attemptsMax) {
      if (!(await markDeadLettered(tx, claim.id, claim.leaseToken, error))) return 'lease_lost';
      await appendAudit(tx, {
        actor: 'merchant-webhooks',
        action: 'merchant_webhook.dead_lettered',
        subjectType: 'merchant_webhook_delivery',
        subjectId: claim.id,
        after: { attempts: claim.attempt, error },
      });
      return 'dead_lettered';
    }
    const next = await scheduleRetry(tx, claim.id, claim.leaseToken, {
      delayMs: retryDelayMs(used, options),
      error,
    });
    if (next === undefined) return 'lease_lost';
    await enqueueJob(
      tx,
      deliverTask,
      { deliveryId: claim.id },
      { jobKey: `${deliveryJobKeyPrefix}${claim.id}`, runAt: next, maxAttempts: deliverJobAttemptsMax },
    );
    return 'failed_attempt';
  });
  const fields = {
    deliveryId: claim.id,
    eventId: claim.eventId,
    attempt: claim.attempt,
    statusCode: result?.statusCode ?? null,
    durationMs: result?.durationMs ?? 0,
    error: result?.ok ? null : error,
  };
  if (outcome === 'lease_lost') {
    // Another run took the delivery over after our lease ran out; it decides what follows.
    deps.logger.warn(fields, 'merchant webhook attempt finished after its lease ran out');
    return { outcome: 'skipped' };
  }
  merchantWebhookDeliveries.inc({ outcome });
  if (outcome === 'delivered') deps.logger.info(fields, 'merchant webhook delivered');
  else if (outcome === 'failed_attempt')
    deps.logger.warn(fields, 'merchant webhook attempt failed; will retry');
  else deps.logger.error(fields, 'merchant webhook dead-lettered');
  return { outcome, attempt: claim.attempt, result };
}
