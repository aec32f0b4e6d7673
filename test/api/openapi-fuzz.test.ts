import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealAuditLog, verifyAuditLog } from '../../src/audit/audit.ts';
import { updatePaymentsMode, updatePayoutsFrozen } from '../../src/controls/data.ts';
import { signatureHeaderValue } from '../../src/deposits/signature.ts';
import { selectImbalances } from '../../src/ledger/data.ts';
import type { Role } from '../../src/platform/auth/roles.ts';
import { problemCatalogue } from '../../src/platform/errors.ts';
import { runDetector } from '../../src/reconciliation/runner.ts';
import { openFindings, testDeps } from '../../src/reconciliation/test-support.ts';
import { startTestNetwork, type TestNetwork } from '../../src/sandbox/test-support.ts';
import { fundFromFees } from '../support/ledger.ts';
import {
  hostile,
  type JsonSchema,
  Known,
  objectFor,
  taints,
  valueFor,
} from '../support/openapi-arbitraries.ts';
import { startTestService, type TestService } from '../support/service.ts';

/**
 * Acceptance 4 of issue 14: every operation the service publishes in /openapi.json, called a few
 * thousand times with the roles it allows and with values of the right shape and hostile ones,
 * answers no 5xx, every refusal is problem+json, and afterwards the ledger balances and the audit
 * chain verifies. Seeded, so a failure replays; FUZZ_SEED and FUZZ_RUNS override for longer runs.
 */

const seed = Number(process.env.FUZZ_SEED ?? 1_414);
/** About 15 s on a busy 2-core machine; FUZZ_RUNS=50000 for a longer hunt. */
const numRuns = Number(process.env.FUZZ_RUNS ?? 6_000);
const webhookSecret = 'rampco-fuzz-secret-000000001';
const poolMax = 500;

type Parameter = { name: string; in: 'path' | 'query' | 'header'; required?: boolean; schema: JsonSchema };
type Operation = {
  method: string;
  path: string;
  parameters: Parameter[];
  body: JsonSchema | undefined;
  roles: readonly Role[] | undefined;
};
type Generated = {
  operation: Operation;
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  body: { kind: 'json'; value: unknown } | { kind: 'raw'; text: string } | undefined;
  caller: { kind: 'allowed'; pick: number; subject: number } | { kind: 'anonymous' } | { kind: 'viewer' };
  signed: boolean;
  /** One leaf of a clean request made bad after ids are resolved, so only that value is wrong. */
  mutation: Mutation | undefined;
};
type Mutation = { leaf: number; taint: string | undefined; value: unknown };

let service: TestService;
let network: TestNetwork;
let operations: Operation[];
const tokens = new Map<string, string>();
const pools: Record<Known['pool'], string[]> = { id: [], cursor: [], payloadHash: [] };

function remember(pool: Known['pool'], value: string): void {
  const values = pools[pool];
  if (values.includes(value)) return;
  values.push(value);
  if (values.length > poolMax) values.shift();
}

function resolve(value: unknown): unknown {
  if (value instanceof Known) {
    const values = pools[value.pool];
    return values.length === 0 ? '00000000-0000-4000-8000-000000000000' : values[value.index % values.length];
  }
  if (Array.isArray(value)) return value.map(resolve);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolve(item)]));
  }
  return value;
}

/** Percent-encodes like a careless client: a lone surrogate becomes bytes that are not UTF-8. */
function encodeComponent(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return Array.from(text, (char) => {
    const code = char.codePointAt(0) ?? 0;
    if (code >= 0xd800 && code <= 0xdfff) return '%ED%A0%80';
    return encodeURIComponent(char);
  }).join('');
}

function harvest(value: unknown, key = ''): void {
  if (typeof value === 'string') {
    if ((key === 'id' || key.endsWith('Id')) && /^[0-9a-f-]{36}$/.test(value)) remember('id', value);
    if (key === 'nextCursor') remember('cursor', value);
    if (key === 'payloadHash') remember('payloadHash', value);
    return;
  }
  if (Array.isArray(value)) for (const item of value) harvest(item, key);
  else if (value !== null && typeof value === 'object') {
    for (const [name, item] of Object.entries(value)) harvest(item, name);
  }
}

function operationsOf(document: {
  paths: Record<string, Record<string, Record<string, unknown>>>;
}): Operation[] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => {
      const content = (operation.requestBody as { content?: Record<string, { schema: JsonSchema }> })
        ?.content;
      return {
        method: method.toUpperCase(),
        path,
        parameters: (operation.parameters as Parameter[] | undefined) ?? [],
        body: content ? Object.values(content)[0]?.schema : undefined,
        roles: operation['x-roles'] as Role[] | undefined,
      };
    }),
  );
}

const providerPayloadSchema: JsonSchema = {
  type: 'object',
  required: ['reference', 'accountId', 'asset', 'amount'],
  properties: {
    reference: { type: 'string', minLength: 1, maxLength: 200 },
    accountId: { type: 'string', format: 'uuid' },
    asset: { type: 'string' },
    amount: { type: 'string' },
  },
};

function bodyFor(schema: JsonSchema, hostileWeight: number): fc.Arbitrary<Generated['body']> {
  const shaped = objectFor(schema.type === 'string' ? providerPayloadSchema : schema, hostileWeight).map(
    (value) => ({ kind: 'json' as const, value }),
  );
  if (hostileWeight === 0) return shaped;
  return fc.oneof(
    { weight: 12, arbitrary: shaped },
    { weight: 1, arbitrary: hostile.map((value) => ({ kind: 'json' as const, value })) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom('{"amount":', '', 'null', '[', '{"a":"\\ud800"}', '{"a":"\\u0000"}', '\u0000')
        .map((text) => ({ kind: 'raw' as const, text })),
    },
  );
}

/** A request is clean (only well-shaped values, so it reaches the services) or dirty. */
function requestFor(operation: Operation): fc.Arbitrary<Generated> {
  const mutation = fc.record({
    leaf: fc.nat(),
    taint: fc.option(fc.constantFrom(...taints), { freq: 2 }).map((taint) => taint ?? undefined),
    value: hostile,
  });
  return fc.oneof(
    { weight: 2, arbitrary: requestWith(operation, 0) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(requestWith(operation, 0), mutation)
        .map(([generated, chosen]) => ({ ...generated, mutation: chosen })),
    },
    { weight: 1, arbitrary: requestWith(operation, 1) },
  );
}

type Leaf = { holder: Record<string, unknown> | unknown[]; key: string | number };

function leavesOf(value: unknown, into: Leaf[] = []): Leaf[] {
  if (value === null || typeof value !== 'object') return into;
  const holder = value as Record<string, unknown>;
  for (const key of Object.keys(holder)) {
    const item = holder[key];
    if (item !== null && typeof item === 'object') leavesOf(item, into);
    else into.push({ holder, key });
  }
  return into;
}

function mutate(parts: unknown[], mutation: Mutation | undefined): void {
  if (mutation === undefined) return;
  const leaves = parts.flatMap((part) => leavesOf(part));
  const leaf = leaves[mutation.leaf % Math.max(leaves.length, 1)];
  if (leaf === undefined) return;
  const holder = leaf.holder as Record<string | number, unknown>;
  const current = holder[leaf.key];
  if (mutation.taint !== undefined && typeof current === 'string') {
    const at = mutation.leaf % (current.length + 1);
    holder[leaf.key] = `${current.slice(0, at)}${mutation.taint}${current.slice(at)}`;
  } else {
    holder[leaf.key] = mutation.value;
  }
}

function requestWith(operation: Operation, hostileWeight: number): fc.Arbitrary<Generated> {
  const parts = (where: Parameter['in']) => {
    const record: Record<string, fc.Arbitrary<unknown>> = {};
    const requiredKeys: string[] = [];
    for (const parameter of operation.parameters.filter((item) => item.in === where)) {
      record[parameter.name] = valueFor(parameter.schema, parameter.name, hostileWeight);
      if (parameter.required || where === 'path' || hostileWeight === 0) requiredKeys.push(parameter.name);
    }
    return fc.record(record, { requiredKeys });
  };
  return fc.record({
    operation: fc.constant(operation),
    params: parts('path'),
    query: parts('query'),
    headers: parts('header'),
    body: operation.body ? bodyFor(operation.body, hostileWeight) : fc.constant(undefined),
    caller:
      hostileWeight === 0
        ? fc.record({ kind: fc.constant('allowed' as const), pick: fc.nat(), subject: fc.nat(1) })
        : fc.oneof(
            {
              weight: 8,
              arbitrary: fc.record({
                kind: fc.constant('allowed' as const),
                pick: fc.nat(),
                subject: fc.nat(1),
              }),
            },
            { weight: 1, arbitrary: fc.constant({ kind: 'anonymous' as const }) },
            { weight: 1, arbitrary: fc.constant({ kind: 'viewer' as const }) },
          ),
    signed: hostileWeight === 0 ? fc.constant(true) : fc.nat(9).map((draw) => draw > 0),
    mutation: fc.constant(undefined),
  });
}

function authorization(generated: Generated): Record<string, string> {
  const { caller, operation } = generated;
  if (operation.roles === undefined || caller.kind === 'anonymous') return {};
  if (caller.kind === 'viewer') return { authorization: `Bearer ${tokens.get('viewer-0')}` };
  const role = operation.roles[caller.pick % operation.roles.length] ?? 'viewer';
  return { authorization: `Bearer ${tokens.get(`${role}-${caller.subject}`)}` };
}

type Outcome = { status: number; problems: string[] };

async function send(generated: Generated): Promise<Outcome> {
  const { operation } = generated;
  const params = resolve(generated.params) as Record<string, unknown>;
  const queryValues = resolve(generated.query) as Record<string, unknown>;
  const headerValues = resolve(generated.headers) as Record<string, unknown>;
  const sent = generated.body?.kind === 'json' ? { value: resolve(generated.body.value) } : undefined;
  mutate([params, queryValues, headerValues, sent], generated.mutation);
  const url = operation.path.replace(/\{([^}]+)\}/g, (_match, name: string) => encodeComponent(params[name]));
  const query = Object.entries(queryValues)
    .map(([name, value]) => `${encodeComponent(name)}=${encodeComponent(value)}`)
    .join('&');
  const headers: Record<string, string> = { ...authorization(generated) };
  for (const [name, value] of Object.entries(headerValues)) {
    // Header bytes a client cannot send through light-my-request are the raw-socket tests' job.
    if (typeof value === 'string' && /^[\x20-\x7e]*$/.test(value)) headers[name] = value;
  }
  let payload: string | undefined;
  if (sent !== undefined) payload = JSON.stringify(sent.value) ?? 'null';
  if (generated.body?.kind === 'raw') payload = generated.body.text;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    if (operation.path.startsWith('/v1/webhooks/deposits/') && generated.signed) {
      headers['x-webhook-signature'] = signatureHeaderValue(
        webhookSecret,
        Math.floor(Date.now() / 1_000),
        payload,
      );
    }
  }
  const response = await service.app.inject({
    method: operation.method as 'GET' | 'POST',
    url: query === '' ? url : `${url}?${query}`,
    headers,
    ...(payload === undefined ? {} : { payload }),
  });
  const label = `${operation.method} ${operation.path} → ${response.statusCode}`;
  const problems: string[] = [];
  let body: unknown;
  try {
    body = response.json();
  } catch {
    body = undefined;
  }
  const type = (body as { type?: unknown } | undefined)?.type;
  if (response.statusCode >= 500 && type !== 'payments/read-only') problems.push(`${label} ${String(type)}`);
  if (response.statusCode >= 400) {
    const problem = body as Record<string, unknown> | undefined;
    const wellFormed =
      String(response.headers['content-type']).startsWith('application/problem+json') &&
      typeof problem?.type === 'string' &&
      Object.hasOwn(problemCatalogue, problem.type) &&
      problem.status === response.statusCode &&
      typeof problem.title === 'string' &&
      typeof problem.detail === 'string';
    const code = (body as { code?: unknown } | undefined)?.code;
    if (!wellFormed)
      problems.push(`${label} not problem+json (${String(code ?? response.headers['content-type'])})`);
  } else {
    harvest(body);
  }
  // A brake pulled by the fuzz would refuse every later money movement: release it at once.
  if (operation.path === '/internal/modes/read-only' || operation.path === '/internal/modes/freeze') {
    await updatePaymentsMode(service.db.sql, 'standard', 'fuzz', 'released by the fuzz test');
    await updatePayoutsFrozen(service.db.sql, false, 'fuzz', 'released by the fuzz test');
  }
  return { status: response.statusCode, problems };
}

beforeAll(async () => {
  network = await startTestNetwork();
  service = await startTestService({
    env: {
      DEPOSIT_WEBHOOK_SECRET_RAMPCO: webhookSecret,
      STELLAR_HORIZON_URLS: network.sandbox.horizonUrls.join(','),
      STELLAR_RPC_URL: network.sandbox.rpcUrl,
    },
  });
  const { sql } = service.db;
  await sql`insert into deposit_providers (name, kind) values ('rampco', 'external'), ('oldramp', 'external')`;
  await sql`update deposit_providers set mode = 'disabled' where name = 'oldramp'`;
  for (const role of ['viewer', 'operator', 'admin', 'service'] as const) {
    for (const subject of [0, 1])
      tokens.set(`${role}-${subject}`, await service.token(role, `${role}-${subject}`));
  }
  for (const type of ['customer', 'customer', 'merchant'] as const) {
    const [row] = await sql<{ id: string }[]>`
      insert into accounts (type, asset, owner_ref) values (${type}::text, 'XLM', 'fuzz-owner') returning id`;
    await fundFromFees(sql, row?.id ?? '', 1_000_000_000_000n);
    remember('id', row?.id ?? '');
  }
  const response = await service.app.inject({ method: 'GET', url: '/openapi.json' });
  operations = operationsOf(response.json());
});

afterAll(async () => {
  await service?.close();
  await network?.stop();
});

describe('the API under OpenAPI-driven fuzzing', () => {
  it('answers every operation without a 5xx, refuses with problem+json, and keeps the ledger and audit chain whole', {
    timeout: 180_000,
  }, async () => {
    expect(operations.length).toBeGreaterThan(40);
    const called = new Map<string, number>();
    const violations = new Map<string, number>();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...operations).chain(requestFor), async (generated) => {
        const key = `${generated.operation.method} ${generated.operation.path}`;
        called.set(key, (called.get(key) ?? 0) + 1);
        const outcome = await send(generated);
        for (const problem of outcome.problems) violations.set(problem, (violations.get(problem) ?? 0) + 1);
        if (outcome.status < 300) accepted += 1;
      }),
      { seed, numRuns, endOnFailure: true },
    );
    expect(Object.fromEntries(violations)).toEqual({});
    expect([...called.keys()].sort()).toEqual(operations.map((item) => `${item.method} ${item.path}`).sort());
    // Clean requests must get past the schemas, or the fuzz only tests the validator.
    expect(accepted).toBeGreaterThan(numRuns / 5);

    const deps = testDeps(service.db.sql);
    await runDetector(deps, 'ledger_balance');
    await runDetector(deps, 'account_balances');
    expect(await selectImbalances(service.db.sql)).toEqual([]);
    expect(await openFindings(service.db.sql, 'ledger_imbalance')).toEqual([]);
    expect(await openFindings(service.db.sql, 'account_balance_mismatch')).toEqual([]);
    await sealAuditLog(service.db.sql);
    expect(await verifyAuditLog(service.db.sql, service.runtime.keyring)).toMatchObject({ ok: true });
  });
});
