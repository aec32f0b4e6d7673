import { randomUUID } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import { assert } from '../platform/assert.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { enqueueJob } from '../platform/jobs.ts';
import { assertEndpointReachable, type EndpointAddressPolicy } from './address-policy.ts';
import {
  type AttemptRow,
  addEndpointSecret,
  countEnabledEndpoints,
  type DeliveryFilter,
  type DeliveryRow,
  type EndpointRow,
  insertEndpoint,
  lockEndpointSet,
  requeueDeadLetter,
  retirePreviousSecret,
  selectAttempts,
  selectDeliveries,
  selectDelivery,
  selectEndpoint,
  selectEndpoints,
  updateEndpointEnabled,
} from './data.ts';
import { isMerchantEventType, type MerchantEventType, merchantEventTypeNames } from './event-types.ts';
import { deliverJobAttemptsMax, deliverTask, deliveryJobKeyPrefix } from './events.ts';
import type { EndpointSecretBox } from './secrets.ts';
import { newEndpointSecret } from './signing.ts';

/**
 * Merchant endpoints (register, list, disable, enable), the delivery log and the dead-letter
 * queue's replay: one library for the routes and the CLI. Every change is in the audit log.
 */

/** Every event fans out to at most this many endpoints: it bounds the money path's insert. */
export const endpointsEnabledMax = 50;
export const endpointsPageMax = 200;
export const deliveriesPageMax = 200;
export const attemptsPageMax = 200;
export const urlLengthMax = 2_048;
export const descriptionLengthMax = 200;
export const ownerRefLengthMax = 200;
export const reasonLengthMax = 1_000;
/** Arbitrary but fixed: serialises endpoint registrations against the enabled-endpoint limit. */
const endpointSetLockKey = 7_340_018;

export type Actor = { name: string; requestId?: string };

export type EndpointInput = {
  url: string;
  eventTypes: readonly string[];
  ownerRef: string | null;
  description: string | null;
};

/**
 * An endpoint is an absolute https URL (http only where configured: local development and
 * tests), without user info, whose secret we would otherwise send in every request line.
 */
export function checkEndpointUrl(text: string, allowHttp: boolean): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DomainError('merchant-webhook/invalid-url', 'the endpoint URL is not an absolute URL');
  }
  const schemes = allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) {
    throw new DomainError(
      'merchant-webhook/invalid-url',
      allowHttp
        ? 'the endpoint URL must be http:// or https://'
        : 'the endpoint URL must be https:// (http:// only with MERCHANT_WEBHOOK_ALLOW_HTTP)',
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new DomainError('merchant-webhook/invalid-url', 'the endpoint URL must not carry credentials');
  }
  if (url.hash !== '' || text.includes('#')) {
    throw new DomainError('merchant-webhook/invalid-url', 'the endpoint URL must not have a fragment');
  }
  return url.toString();
}

export function checkEventTypes(types: readonly string[]): MerchantEventType[] {
  const unknown = types.filter((type) => !isMerchantEventType(type));
  if (unknown.length > 0) {
    throw new DomainError(
      'merchant-webhook/unknown-event-type',
      `unknown event type ${unknown.join(', ')}; known: ${merchantEventTypeNames.join(', ')}`,
      { unknown },
    );
  }
  if (types.length === 0) throw new DomainError('request/validation', 'subscribe to at least one event type');
  return [...new Set(types as MerchantEventType[])];
}

export type EndpointView = {
  id: string;
  url: string;
  description: string | null;
  ownerRef: string | null;
  eventTypes: string[];
  enabled: boolean;
  /** When a rotation added the newest secret while the previous one still signs; null: one secret. */
  rotationStartedAt: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
};

export function endpointView(row: EndpointRow): EndpointView {
  return {
    ...row,
    rotationStartedAt: row.rotationStartedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** The secret is in the answer of this call only: it is stored sealed and never shown again. */
export async function createEndpoint(
  sql: Sql,
  deps: { secrets: () => Promise<EndpointSecretBox>; allowHttp: boolean; policy: EndpointAddressPolicy },
  input: EndpointInput,
  actor: Actor,
): Promise<{ endpoint: EndpointView; secret: string }> {
  const url = checkEndpointUrl(input.url, deps.allowHttp);
  await assertEndpointReachable(deps.policy, new URL(url));
  const eventTypes = checkEventTypes(input.eventTypes);
  const secret = newEndpointSecret();
  const secretSealed = (await deps.secrets()).seal(secret);
  const row = await withTransaction(sql, async (tx) => {
    await lockEndpointSet(tx, endpointSetLockKey);
    await assertRoomForEndpoint(tx);
    const inserted = await insertEndpoint(tx, {
      id: randomUUID(),
      url,
      description: input.description,
      ownerRef: input.ownerRef,
      eventTypes,
      secretSealed,
      createdBy: actor.name,
    });
    await appendAudit(tx, {
      actor: actor.name,
      action: 'merchant_webhook.endpoint_added',
      subjectType: 'merchant_webhook_endpoint',
      subjectId: inserted.id,
      after: endpointView(inserted),
      requestId: actor.requestId,
    });
    return inserted;
  });
  return { endpoint: endpointView(row), secret };
}

async function assertRoomForEndpoint(tx: Executor): Promise<void> {
  if ((await countEnabledEndpoints(tx)) >= endpointsEnabledMax) {
    throw new DomainError(
      'merchant-webhook/too-many-endpoints',
      `${endpointsEnabledMax} endpoints are enabled already; disable one first`,
    );
  }
}

export async function listEndpoints(db: Executor, limit: number): Promise<EndpointView[]> {
  return (await selectEndpoints(db, limit)).map(endpointView);
}

export async function getEndpoint(db: Executor, id: string): Promise<EndpointView> {
  const row = await selectEndpoint(db, id);
  if (!row) throw new DomainError('merchant-webhook/endpoint-not-found', `no endpoint ${id}`);
  return endpointView(row);
}

/**
 * Disabling stops deliveries to the endpoint: its pending deliveries are dead-lettered at their
 * next attempt, without a request, so that they can be replayed once it is enabled again.
 * Setting the flag it already has changes nothing and writes no audit entry.
 */
export async function setEndpointEnabled(
  sql: Sql,
  input: { id: string; enabled: boolean; reason: string },
  actor: Actor,
): Promise<EndpointView> {
  return withTransaction(sql, async (tx) => {
    await lockEndpointSet(tx, endpointSetLockKey);
    const current = await selectEndpoint(tx, input.id);
    if (!current) throw new DomainError('merchant-webhook/endpoint-not-found', `no endpoint ${input.id}`);
    if (current.enabled === input.enabled) return endpointView(current);
    if (input.enabled) await assertRoomForEndpoint(tx);
    const changed = await updateEndpointEnabled(tx, input.id, input.enabled);
    assert(changed, 'endpoint vanished under its lock');
    await appendAudit(tx, {
      actor: actor.name,
      action: input.enabled ? 'merchant_webhook.endpoint_enabled' : 'merchant_webhook.endpoint_disabled',
      subjectType: 'merchant_webhook_endpoint',
      subjectId: input.id,
      before: { enabled: current.enabled },
      after: { enabled: changed.enabled, reason: input.reason },
      requestId: actor.requestId,
    });
    return endpointView(changed);
  });
}

/**
 * Secret rotation, step 1: a new secret (returned this once) signs every delivery from now on, and
 * the current one keeps signing beside it, so the merchant can switch its verifier at any time.
 */
export async function addSecret(
  sql: Sql,
  deps: { secrets: () => Promise<EndpointSecretBox> },
  id: string,
  actor: Actor,
): Promise<{ endpoint: EndpointView; secret: string }> {
  const secret = newEndpointSecret();
  const secretSealed = (await deps.secrets()).seal(secret);
  const row = await withTransaction(sql, async (tx) => {
    const current = await selectEndpoint(tx, id);
    if (!current) throw new DomainError('merchant-webhook/endpoint-not-found', `no endpoint ${id}`);
    const changed = await addEndpointSecret(tx, id, secretSealed);
    if (!changed) {
      throw new DomainError(
        'merchant-webhook/rotation-in-progress',
        `endpoint ${id} is signing with two secrets already: retire the previous one first`,
      );
    }
    await appendAudit(tx, {
      actor: actor.name,
      action: 'merchant_webhook.secret_added',
      subjectType: 'merchant_webhook_endpoint',
      subjectId: id,
      after: { rotationStartedAt: changed.rotationStartedAt?.toISOString() ?? null },
      requestId: actor.requestId,
    });
    return changed;
  });
  return { endpoint: endpointView(row), secret };
}

/** Secret rotation, step 2: the previous secret stops signing; only the newest one is left. */
export async function retireSecret(sql: Sql, id: string, actor: Actor): Promise<EndpointView> {
  return withTransaction(sql, async (tx) => {
    const current = await selectEndpoint(tx, id);
    if (!current) throw new DomainError('merchant-webhook/endpoint-not-found', `no endpoint ${id}`);
    const changed = await retirePreviousSecret(tx, id);
    if (!changed) {
      throw new DomainError(
        'merchant-webhook/no-previous-secret',
        `endpoint ${id} signs with one secret: there is no previous one to retire`,
      );
    }
    await appendAudit(tx, {
      actor: actor.name,
      action: 'merchant_webhook.secret_retired',
      subjectType: 'merchant_webhook_endpoint',
      subjectId: id,
      before: { rotationStartedAt: current.rotationStartedAt?.toISOString() ?? null },
      after: { rotationStartedAt: null },
      requestId: actor.requestId,
    });
    return endpointView(changed);
  });
}

export type DeliveryView = {
  id: string;
  eventId: string;
  eventType: string;
  endpointId: string;
  status: DeliveryRow['status'];
  attempts: number;
  replays: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
  deadLetteredAt: string | null;
};

export function deliveryView(row: DeliveryRow): DeliveryView {
  return {
    id: row.id,
    eventId: row.eventId,
    eventType: row.eventType,
    endpointId: row.endpointId,
    status: row.status,
    attempts: row.attempts,
    replays: row.replays,
    nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt.toISOString() : null,
    lastError: row.lastError,
    createdAt: row.createdAt.toISOString(),
    deliveredAt: row.deliveredAt?.toISOString() ?? null,
    deadLetteredAt: row.deadLetteredAt?.toISOString() ?? null,
  };
}

export async function listDeliveries(db: Executor, filter: DeliveryFilter): Promise<DeliveryView[]> {
  return (await selectDeliveries(db, filter)).map(deliveryView);
}

export type AttemptView = Omit<AttemptRow, 'attemptedAt'> & { attemptedAt: string };

export async function getDeliveryDetail(
  db: Executor,
  id: string,
): Promise<DeliveryView & { log: AttemptView[] }> {
  const row = await selectDelivery(db, id);
  if (!row) throw new DomainError('merchant-webhook/delivery-not-found', `no delivery ${id}`);
  const attempts = await selectAttempts(db, id, attemptsPageMax);
  return {
    ...deliveryView(row),
    log: attempts.map((attempt) => ({ ...attempt, attemptedAt: attempt.attemptedAt.toISOString() })),
  };
}

/**
 * Sends a dead-lettered delivery again, with a fresh attempt budget. It is the same event: the
 * same `webhook-id` and body (only the timestamp and signature are the new attempt's), so a
 * merchant that did receive it after all can drop the duplicate.
 */
export async function replayDelivery(sql: Sql, id: string, actor: Actor): Promise<DeliveryView> {
  return withTransaction(sql, async (tx) => {
    const before = await selectDelivery(tx, id);
    if (!before) throw new DomainError('merchant-webhook/delivery-not-found', `no delivery ${id}`);
    const endpoint = await selectEndpoint(tx, before.endpointId);
    if (!endpoint?.enabled) {
      throw new DomainError(
        'merchant-webhook/endpoint-disabled',
        `endpoint ${before.endpointId} is disabled: enable it before replaying`,
      );
    }
    const runAt = await requeueDeadLetter(tx, id);
    if (runAt === undefined) {
      throw new DomainError(
        'merchant-webhook/not-dead-lettered',
        `delivery ${id} is ${before.status}, not dead-lettered`,
      );
    }
    await enqueueJob(
      tx,
      deliverTask,
      { deliveryId: id },
      { jobKey: `${deliveryJobKeyPrefix}${id}`, runAt, maxAttempts: deliverJobAttemptsMax },
    );
    await appendAudit(tx, {
      actor: actor.name,
      action: 'merchant_webhook.delivery_replayed',
      subjectType: 'merchant_webhook_delivery',
      subjectId: id,
      before: { status: before.status, attempts: before.attempts, lastError: before.lastError },
      after: { status: 'pending' },
      requestId: actor.requestId,
    });
    const after = await selectDelivery(tx, id);
    assert(after, 'delivery vanished after its replay');
    return deliveryView(after);
  });
}
