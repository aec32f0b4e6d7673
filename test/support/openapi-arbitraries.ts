import { Keypair } from '@stellar/stellar-sdk';
import fc from 'fast-check';
import { merchantEventTypeNames } from '../../src/webhooks/event-types.ts';

/**
 * fast-check arbitraries built from the OpenAPI document the service publishes: for every
 * parameter and body property a mix of values of the right shape (so requests get past the schema
 * and reach the services and the database) and hostile ones (control characters, lone surrogates,
 * `urn:uuid:` ids, huge numbers, crafted cursors, wrong types, overlong strings).
 */

export type JsonSchema = {
  type?: string | string[];
  format?: string;
  pattern?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
};

/** A value only known while the fuzz runs (an id or cursor a previous answer returned). */
export class Known {
  readonly pool: 'id' | 'cursor' | 'payloadHash';
  readonly index: number;
  constructor(pool: Known['pool'], index: number) {
    this.pool = pool;
    this.index = index;
  }
}

const sampleUuid = '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17';
const lengthGeneratedMax = 40;

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** Strings PostgreSQL, JSON columns or the id and cursor parsers have tripped on before. */
const hostileStrings = [
  '',
  ' ',
  'a\u0000b',
  '\u0000',
  '\u0007bell',
  'line\nbreak',
  '\u001b[31m',
  '\u007f',
  'lone \ud800 high',
  'lone \udfff low',
  '\udc00',
  `urn:uuid:${sampleUuid}`,
  `URN:UUID:${sampleUuid.toUpperCase()}`,
  `{${sampleUuid}}`,
  sampleUuid.replaceAll('-', ''),
  '-'.repeat(36),
  '00000000-0000-0000-0000-000000000000',
  '99999999999999999999999999999999999999',
  '-1',
  '1e400',
  'NaN',
  "'; drop table accounts; --",
  '%00',
  '../../etc/passwd',
  '\u202e\u2066',
  '\ufeff',
  '😀'.repeat(30),
  'x'.repeat(70_000),
  base64url('+275760-09-13T00:00:00.000Z|00000000-0000-0000-0000-000000000000'),
  base64url(`-271821-04-20T00:00:00.000Z|${sampleUuid}`),
  base64url(`0000-01-01T00:00:00.000Z|${'-'.repeat(36)}`),
  base64url(`2024-01-01T00:00:00.000Z|${'-'.repeat(36)}`),
  base64url(`1970-01-01T00:00:00.000Z|urn:uuid:${sampleUuid}`),
  base64url('2024-01-01T00:00:00.000Z'),
  base64url('\u0000|\u0000'),
];

const hostileOther: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  2 ** 63,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER + 2,
  [],
  [1, 2],
  {},
  { nested: { deeper: ['\u0000'] } },
];

export const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...hostileStrings) },
  { weight: 2, arbitrary: fc.constantFrom(...hostileOther) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ maxLength: 10 }), fc.constantFrom('\u0000', '\ud800', '\udbff', '\u0001', '\u009f'))
      .map(([text, bad]) => `${text}${bad}${text}`),
  },
);

const uuidArbitrary: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.nat(1_000).map((index) => new Known('id', index)) },
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.uuid().map((id) => id.toUpperCase()) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.uuid(), fc.constantFrom('urn:uuid:', 'URN:UUID:', 'Urn:Uuid:'))
      .map(([id, prefix]) => `${prefix}${id}`),
  },
);

const amountArbitrary = fc.oneof(
  fc.constantFrom(
    '1',
    '0.5',
    '10',
    '0.0000001',
    '100.25',
    '0',
    '-1',
    '1.00000001',
    '1e3',
    '9223372036854775807',
  ),
  fc.bigInt({ min: 1n, max: 10n ** 12n }).map((value) => (value % 10_000n).toString()),
  fc
    .tuple(fc.nat(1_000), fc.nat(9_999_999))
    .map(([units, fraction]) => `${units}.${fraction.toString().padStart(7, '0')}`),
);

const signedAmountArbitrary = fc.oneof(
  amountArbitrary,
  amountArbitrary.map((amount) => (amount.startsWith('-') ? amount : `-${amount}`)),
);

const destinationArbitrary = fc.oneof(
  fc
    .uint8Array({ minLength: 32, maxLength: 32 })
    .map((seed) => Keypair.fromRawEd25519Seed(Buffer.from(seed)).publicKey()),
  fc.constant(`G${'A'.repeat(55)}`),
);

const cursorArbitrary: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.nat(100).map((index) => new Known('cursor', index)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.date({ noInvalidDate: true }), fc.uuid())
      .map(([date, id]) => base64url(`${date.toISOString()}|${id}`)),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          '+275760-09-13T00:00:00.000Z',
          '-271821-04-20T00:00:00.000Z',
          '0000-01-01T00:00:00.000Z',
          '+010000-01-01T00:00:00.000Z',
          '-004713-12-31T00:00:00.000Z',
          '2024-02-30',
          '1',
        ),
        fc.constantFrom('-'.repeat(36), sampleUuid, 'f'.repeat(36), `urn:uuid:${sampleUuid}`),
      )
      .map(([date, id]) => base64url(`${date}|${id}`)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 18 }).filter((text) => /^[0-9]*$/.test(text)) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 10n ** 19n }).map(String) },
);

/** Values of the right shape for fields whose schema alone says too little (an amount is a string). */
function byName(name: string): fc.Arbitrary<unknown> | undefined {
  switch (name) {
    case 'amount':
      return signedAmountArbitrary;
    case 'asset':
      return fc.constantFrom('XLM', 'USDC', 'EURC', 'xlm', 'NOPE');
    case 'destination':
      return destinationArbitrary;
    case 'url':
      return fc.constantFrom(
        'https://merchant.example/hooks',
        'https://merchant.example:8443/a?b=c',
        'http://merchant.example/hooks',
        'https://user:pass@merchant.example/',
        'ftp://merchant.example/',
      );
    case 'eventTypes':
      return fc.array(fc.constantFrom(...merchantEventTypeNames, 'payout.nothing'), {
        minLength: 1,
        maxLength: 3,
      });
    case 'cursor':
      return cursorArbitrary;
    case 'payloadHash':
      return fc.oneof(
        fc.nat(100).map((index) => new Known('payloadHash', index)),
        fc.stringMatching(/^[0-9a-f]{64}$/),
      );
    case 'olderThan':
      return fc.constantFrom('90s', '30m', '2h', '1d', '0s', '400d', '1y', '-1h', '9999999999999999s');
    case 'provider':
      return fc.constantFrom('stellar', 'rampco', 'nobody', 'oldramp');
    case 'idempotency-key':
      return fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 });
    default:
      return undefined;
  }
}

function stringArbitrary(schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.format === 'uuid') return uuidArbitrary;
  if (schema.format === 'date-time')
    return fc.date({ noInvalidDate: true }).map((date) => date.toISOString());
  if (schema.pattern !== undefined) return fc.stringMatching(new RegExp(schema.pattern));
  const minLength = schema.minLength ?? 0;
  const maxLength = Math.min(schema.maxLength ?? lengthGeneratedMax, Math.max(minLength, lengthGeneratedMax));
  return fc.oneof(fc.string({ minLength, maxLength }), fc.string({ unit: 'grapheme', minLength, maxLength }));
}

/** An arbitrary for a value the schema describes, with hostile values mixed in at `hostileWeight`. */
export function valueFor(schema: JsonSchema, name = '', hostileWeight = 1): fc.Arbitrary<unknown> {
  const shaped = shapedFor(schema, name, hostileWeight);
  if (hostileWeight === 0) return shaped;
  return fc.oneof(
    { weight: 6, arbitrary: shaped },
    { weight: hostileWeight, arbitrary: hostile },
    { weight: hostileWeight, arbitrary: tainted(shaped) },
  );
}

export const taints = ['\u0000', '\ud800', '\udfff', '\u0001', '\u001f', '\u007f', '\u0085', '\u2028'];

/** A well-shaped string with one bad character slipped in, so only that character is wrong. */
function tainted(shaped: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.tuple(shaped, fc.constantFrom(...taints), fc.nat()).map(([value, taint, at]) => {
    if (typeof value !== 'string') return value;
    const position = at % (value.length + 1);
    return `${value.slice(0, position)}${taint}${value.slice(position + 1)}`;
  });
}

function shapedFor(schema: JsonSchema, name: string, hostileWeight: number): fc.Arbitrary<unknown> {
  const named = byName(name);
  if (named !== undefined) return named;
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum !== undefined) return fc.constantFrom(...schema.enum);
  if (schema.anyOf !== undefined) {
    return fc.oneof(...schema.anyOf.map((option) => shapedFor(option, name, hostileWeight)));
  }
  if (schema.allOf !== undefined) {
    const merged: JsonSchema = { type: 'object', properties: {}, required: [] };
    for (const part of schema.allOf) {
      Object.assign(merged.properties ?? {}, part.properties);
      merged.required?.push(...(part.required ?? []));
    }
    return shapedFor(merged, name, hostileWeight);
  }
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      return stringArbitrary(schema);
    case 'integer':
      return fc.oneof(
        fc.integer({ min: schema.minimum ?? -1_000, max: schema.maximum ?? 1_000_000 }),
        fc.constantFrom(schema.minimum ?? 0, schema.maximum ?? 1),
      );
    case 'number':
      return fc.double({ noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(valueFor(schema.items ?? {}, name, hostileWeight), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      });
    case 'object':
      return objectFor(schema, hostileWeight);
    default:
      return fc.oneof(fc.constant({}), fc.string({ maxLength: 10 }));
  }
}

/** Required properties are always there, optional ones sometimes, and now and then a stray one. */
export function objectFor(schema: JsonSchema, hostileWeight: number): fc.Arbitrary<Record<string, unknown>> {
  const required = new Set(schema.required ?? []);
  const entries = Object.entries(schema.properties ?? {});
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, property] of entries) record[key] = valueFor(property, key, hostileWeight);
  const requiredKeys = entries.map(([key]) => key).filter((key) => required.has(key));
  if (hostileWeight === 0) return fc.record(record, { requiredKeys });
  return fc
    .tuple(
      fc.record(record, { requiredKeys }),
      fc.option(fc.tuple(fc.constantFrom('extra', '__proto__', 'constructor'), hostile), { freq: 15 }),
    )
    .map(([value, stray]) => (stray === null ? value : { ...value, [stray[0]]: stray[1] }));
}
