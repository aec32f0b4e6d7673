import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Keypair } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeaderValue } from '../../src/deposits/signature.ts';
import { fundFromFees } from '../support/ledger.ts';
import { startTestService, type TestService } from '../support/service.ts';

/**
 * Plants unique markers, stand-ins for personal data and secrets, in every free-text field,
 * header and query parameter `/openapi.json` declares, on requests that succeed, are refused
 * and fail, and reads the service's own log written at its most verbose level: no marker may be
 * in it, while every refusal is still logged with its problem type and request id.
 */

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
};
type Parameter = { in: string; name: string; schema: Schema };
type Operation = { method: string; path: string; parameters: Parameter[]; body: Schema | undefined };
type OpenApi = {
  paths: Record<
    string,
    Record<
      string,
      { parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: Schema }> } }
    >
  >;
};
/** `fit`: markers only where the schema accepts one, so the request reaches the domain code. */
type Mode = 'fit' | 'marker';
type Sent = { label: string; status: number; requestId: string; problem: string | undefined };

const provider = 'logscan';
const webhookSecret = 'logscan-webhook-secret-0001';
/** Markers are long enough that no other log content can contain one by chance. */
const markerLengthMin = 10;
const markerLength = 16;

const captured: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    captured.push(chunk.toString('utf8'));
    done();
  },
});

/** Every planted value and where it was planted, so a finding names the field. */
const planted = new Map<string, string>();
const sent: Sent[] = [];

function hex(length: number): string {
  return randomBytes(Math.ceil(length / 2))
    .toString('hex')
    .slice(0, length);
}

/** Marker shapes, tried in order until one fits a field's pattern. */
const shapes: readonly ((length: number) => string)[] = [
  (length) => `pii${hex(length - 3)}`,
  (length) => `PII${hex(length - 3).toUpperCase()}`,
  (length) =>
    `9${hex(length * 2)
      .replace(/[a-f]/g, '')
      .padEnd(length, '7')
      .slice(0, length - 1)}`,
  (length) => hex(length),
];

function plant(where: string, value: string): string {
  planted.set(value, where);
  return value;
}

function marker(where: string): string {
  return plant(where, shapes[0]?.(markerLength) ?? '');
}

/** A marker the field's schema accepts, or undefined when none can (an enum, a short code). */
function fittingMarker(where: string, schema: Schema): string | undefined {
  const pattern = schema.pattern === undefined ? undefined : new RegExp(schema.pattern, 'u');
  const lengthMax = schema.maxLength ?? 64;
  for (const shape of shapes) {
    for (const length of [markerLength, lengthMax]) {
      if (length < Math.max(markerLengthMin, schema.minLength ?? 0) || length > lengthMax) continue;
      const candidate = shape(length);
      if (pattern === undefined || pattern.test(candidate)) return plant(where, candidate);
    }
  }
  return undefined;
}

let service: TestService;
let accountId: string;
let adminToken: string;
let viewerToken: string;
let serviceToken: string;
const destination = Keypair.random().publicKey();

/** Valid values for fields a marker cannot fill, so the request gets past the schema. */
function example(name: string, schema: Schema): string {
  if (schema.format === 'uuid') return accountId;
  if (schema.format === 'date-time') return new Date().toISOString();
  if (name === 'amount') return '1';
  if (name === 'destination') return destination;
  if (name === 'provider') return provider;
  if (name === 'asset') return 'XLM';
  return '1';
}

function branches(schema: Schema): Schema[] | undefined {
  return schema.anyOf ?? schema.oneOf;
}

function valueFor(name: string, schema: Schema, where: string, mode: Mode): unknown {
  const options = branches(schema);
  if (options !== undefined) {
    // A text memo carries free text; other enums take their first value.
    const text = options.find((option) => option.enum?.includes('text'));
    if (text !== undefined && mode === 'fit') return 'text';
    // The richest branch carries the most fields to plant in (a text memo rather than none).
    const richest = [...options].sort(
      (a, b) => Object.keys(b.properties ?? {}).length - Object.keys(a.properties ?? {}).length,
    )[0];
    return richest === undefined ? undefined : valueFor(name, richest, where, mode);
  }
  if (schema.properties !== undefined) {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(schema.properties)) {
      out[key] = valueFor(key, inner, `${where}.${key}`, mode);
    }
    return out;
  }
  if (schema.items !== undefined) {
    const items = Math.max(1, schema.minItems ?? 0);
    return Array.from({ length: items }, (_, index) =>
      valueFor(name, schema.items ?? {}, `${where}[${index}]`, mode),
    );
  }
  if (schema.type === 'integer' || schema.type === 'number') return 1;
  if (schema.type === 'boolean') return true;
  if (mode === 'marker') return marker(where);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum !== undefined) return schema.enum[0];
  const fixed = schema.format !== undefined || ['amount', 'destination', 'provider'].includes(name);
  return (fixed ? undefined : fittingMarker(where, schema)) ?? example(name, schema);
}

function operations(spec: OpenApi): Operation[] {
  return Object.entries(spec.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      method: method.toUpperCase(),
      path,
      parameters: operation.parameters ?? [],
      body: operation.requestBody?.content['application/json']?.schema,
    })),
  );
}

/** Headers every request carries: what a browser, a proxy or a careless client would send. */
function commonHeaders(label: string): Record<string, string> {
  return {
    'user-agent': marker(`${label} user-agent`),
    cookie: `session=${marker(`${label} cookie`)}`,
    referer: `https://portal.example/${marker(`${label} referer`)}`,
    'x-api-key': marker(`${label} x-api-key`),
    'x-forwarded-for': marker(`${label} x-forwarded-for`),
    host: `${marker(`${label} host`)}.example`,
    'accept-version': marker(`${label} accept-version`),
  };
}

async function send(
  label: string,
  request: {
    method: string;
    url: string;
    headers?: Record<string, string>;
    payload?: string;
    requestId?: string;
  },
): Promise<Sent> {
  const requestId = request.requestId ?? `scan-${sent.length}`;
  const response = await service.app.inject({
    method: request.method as 'GET',
    url: request.url,
    headers: { ...commonHeaders(label), 'x-request-id': requestId, ...request.headers },
    ...(request.payload === undefined ? {} : { payload: request.payload }),
  });
  const isProblem = String(response.headers['content-type']).includes('problem+json');
  const result: Sent = {
    label,
    status: response.statusCode,
    requestId: String(response.headers['x-request-id']),
    problem: isProblem ? (response.json() as { type: string }).type : undefined,
  };
  sent.push(result);
  return result;
}

/** One request to an operation: every parameter, header and body field filled for `mode`. */
async function call(operation: Operation, mode: Mode, authorization: string | undefined, requestId?: string) {
  const label = `${mode} ${operation.method} ${operation.path}${authorization === undefined ? ' anonymous' : ''}`;
  let url = operation.path;
  const query = new URLSearchParams();
  const headers: Record<string, string> = {};
  for (const parameter of operation.parameters) {
    const where = `${label} ${parameter.in}:${parameter.name}`;
    if (parameter.in === 'path') {
      const value =
        mode === 'marker'
          ? marker(where)
          : parameter.schema.format === 'uuid'
            ? randomUUID()
            : example(parameter.name, parameter.schema);
      url = url.replace(`{${parameter.name}}`, encodeURIComponent(value));
    } else if (parameter.name === 'cursor' && mode === 'fit') {
      // A cursor is an opaque token the service issued, not free text: a made-up one is refused
      // before the other parameters reach the domain code. The `marker` request plants one.
    } else {
      const value = valueFor(parameter.name, parameter.schema, where, mode);
      if (parameter.in === 'query') query.set(parameter.name, String(value));
      if (parameter.in === 'header') headers[parameter.name] = String(value);
    }
  }
  // Parameters no route declares: a key and a phone number in the query, and a marker as a name.
  query.set('api_key', marker(`${label} query:api_key`));
  query.set('phone', marker(`${label} query:phone`));
  query.set(marker(`${label} query name`), '1');
  if (authorization !== undefined) headers.authorization = authorization;
  let payload: string | undefined;
  if (operation.body !== undefined) {
    const body = valueFor('body', operation.body, `${label} body`, mode);
    payload = JSON.stringify(
      typeof body === 'string' ? { reference: body, note: marker(`${label} note`) } : body,
    );
    headers['content-type'] = 'application/json';
  }
  return send(label, {
    method: operation.method,
    url: `${url}?${query.toString()}`,
    headers,
    ...(payload === undefined ? {} : { payload }),
    ...(requestId === undefined ? {} : { requestId }),
  });
}

async function sendWebhook(label: string, body: string, signed = true): Promise<Sent> {
  const timestamp = Math.floor(Date.now() / 1_000);
  return send(label, {
    method: 'POST',
    url: `/v1/webhooks/deposits/${provider}`,
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-webhook-signature': signed
        ? signatureHeaderValue(webhookSecret, timestamp, body)
        : `t=${timestamp},v1=${marker(`${label} signature`)}`,
    },
  });
}

function logLines(): Record<string, unknown>[] {
  return captured
    .join('')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

beforeAll(async () => {
  service = await startTestService({
    env: { DEPOSIT_WEBHOOK_SECRET_LOGSCAN: webhookSecret },
    logDestination: sink,
    logLevel: 'trace',
  });
  await service.db.sql`insert into deposit_providers (name, kind) values (${provider}, 'external')`;
  const [row] = await service.db.sql<
    { id: string }[]
  >`insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  accountId = row?.id ?? '';
  await fundFromFees(service.db.sql, accountId, 1_000_000_000n);
  adminToken = `Bearer ${await service.token('admin', 'log-scan-admin')}`;
  viewerToken = `Bearer ${await service.token('viewer', 'log-scan-viewer')}`;
  serviceToken = `Bearer ${await service.token('service', 'log-scan-service')}`;

  // Domain refusals that quote their input in the problem detail. These run before the sweep,
  // which also switches the payments mode to read-only and frozen.
  const reference = marker('webhook reference');
  const deposit = (amount: string, asset = 'XLM') => JSON.stringify({ reference, accountId, asset, amount });
  await sendWebhook('webhook credited', deposit('1'));
  await sendWebhook('webhook reference mismatch', deposit('2'));
  await sendWebhook(
    'webhook unknown asset',
    JSON.stringify({
      reference: marker('webhook reference 2'),
      accountId,
      asset: marker('asset'),
      amount: '1',
    }),
  );
  await sendWebhook('webhook not json', `{"reference":"${marker('webhook broken body')}"`);
  await sendWebhook('webhook bad signature', deposit('3'), false);
  await send('payout unknown asset', {
    method: 'POST',
    url: '/v1/payouts',
    headers: {
      authorization: serviceToken,
      'content-type': 'application/json',
      'idempotency-key': marker('payout idempotency-key'),
    },
    payload: JSON.stringify({
      sourceAccountId: accountId,
      destination,
      asset: fittingMarker('payout asset', { pattern: '^[A-Z0-9]{1,12}$', maxLength: 12 }),
      amount: '1',
    }),
  });
  await send('unknown route', {
    method: 'GET',
    url: `/v1/${marker('unknown route path')}?${marker('unknown route query')}=${marker('unknown route value')}`,
  });

  // A failure the service does not map (a trigger's raise is a bug to fix, not the caller's
  // doing), whose message quotes the row it refused.
  await service.db.sql`
    create function log_scan_forced_failure() returns trigger language plpgsql as $$
    begin
      raise exception 'refusing owner %', new.owner_ref using detail = 'row: ' || new::text;
    end $$`;
  await service.db.sql`
    create trigger log_scan_forced_failure before insert on accounts
    for each row when (new.owner_ref like 'pii%') execute function log_scan_forced_failure()`;
  await send('forced internal error', {
    method: 'POST',
    url: '/v1/accounts',
    headers: { authorization: serviceToken, 'content-type': 'application/json' },
    payload: JSON.stringify({ type: 'customer', asset: 'XLM', ownerRef: marker('forced failure ownerRef') }),
  });

  const spec = (await service.app.inject({ method: 'GET', url: '/openapi.json' })).json() as OpenApi;
  // The payments-mode switches go last: read-only and frozen refuse money movement before the
  // domain code would see the planted values.
  const modeSwitch = (operation: Operation) => operation.path.startsWith('/internal/modes/');
  const ordered = operations(spec).sort((a, b) => Number(modeSwitch(a)) - Number(modeSwitch(b)));
  for (const operation of ordered) {
    // Staff roles nest under admin; money movement is the `service` role's alone.
    const allowed = await call(operation, 'fit', adminToken);
    const token = allowed.status === 403 ? serviceToken : adminToken;
    if (token === serviceToken) await call(operation, 'fit', serviceToken);
    // A caller's unsafe request id is replaced, so the marker in it must not be logged either.
    await call(operation, 'marker', token, `${marker(`${operation.path} x-request-id`)} !`);
    await call(operation, 'fit', `Bearer ${marker(`${operation.path} bearer`)}`);
    await call(operation, 'fit', `Basic ${Buffer.from(`${marker('basic user')}:pw`).toString('base64')}`);
    await call(operation, 'fit', viewerToken);
    await call(operation, 'fit', undefined);
  }
}, 180_000);

afterAll(async () => {
  await service.close();
});

describe('the service log under planted personal data and secrets', () => {
  it('drove refused, failed and accepted requests over every operation', () => {
    const statuses = new Set(sent.map((result) => result.status));
    for (const status of [200, 201, 400, 401, 403, 404, 409, 500]) expect(statuses).toContain(status);
    expect(sent.find((result) => result.label === 'webhook reference mismatch')?.problem).toBe(
      'webhook/reference-mismatch',
    );
    expect(sent.find((result) => result.label === 'forced internal error')?.status).toBe(500);
    expect(planted.size).toBeGreaterThan(1_000);
  });

  it('contains none of the planted values', () => {
    const log = captured.join('');
    const found = [...planted]
      .filter(([value]) => log.includes(value))
      .map(([value, where]) => `${where}: ${value}`);
    expect(found).toEqual([]);
  });

  it('logs every refusal with its problem type and request id', () => {
    const lines = logLines();
    const refusals = sent.filter((result) => result.status >= 400 && result.status < 500);
    const unlogged = refusals.filter(
      (refusal) =>
        !lines.some(
          (line) =>
            line.requestId === refusal.requestId &&
            line.msg === 'request refused' &&
            line.problem === refusal.problem,
        ),
    );
    expect(refusals.length).toBeGreaterThan(100);
    expect(unlogged.map((refusal) => `${refusal.label} → ${refusal.status} ${refusal.problem}`)).toEqual([]);
  });

  it('logs a failure with its request id and what failed, not what was sent', () => {
    const failure = sent.find((result) => result.label === 'forced internal error');
    const line = logLines().find(
      (entry) => entry.requestId === failure?.requestId && entry.msg === 'unhandled error',
    );
    expect(line?.err).toMatchObject({ type: 'PostgresError', code: 'P0001', routine: 'exec_stmt_raise' });
  });
});
