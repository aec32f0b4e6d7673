import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.ts';
import { DomainError } from './errors.ts';

export type { Logger };

/**
 * One central list of what must never reach a log line. Keys are matched at any depth, so a
 * secret nested in a request body or an error's context is caught as well as a top-level one.
 * Secrets are matched by substring (`webhookSecret`, `x-api-key`); personal-data fields by exact
 * name, because substrings such as "address" would also hide Stellar destination addresses.
 */
const secretKeyPattern =
  /authorization|cookie|password|passphrase|secret|token|api[-_]?key|private[-_]?key|signing[-_]?key|seed|credential/i;
/**
 * Keys that look secret but hold what is public: a Stellar network passphrase is published by the
 * network ("Test SDF Network ; September 2015"), a Horizon paging token is a cursor into a public
 * ledger. A user's own passphrase or token under any other key stays hidden.
 */
const publicKeyNames = new Set(['networkpassphrase', 'pagingtoken']);
/** Keys that hold a serialized error (pino's `err`, nested causes): their `name` is a class. */
const errorKeys = new Set(['err', 'error', 'cause']);
const personalKeyNames = new Set(
  [
    'email',
    'emailaddress',
    'phone',
    'phonenumber',
    'mobile',
    'name',
    'firstname',
    'lastname',
    'fullname',
    'legalname',
    'givenname',
    'familyname',
    'address',
    'streetaddress',
    'postaladdress',
    'homeaddress',
    'street',
    'postalcode',
    'zip',
    'dateofbirth',
    'dob',
    'iban',
    'taxid',
    'ssn',
  ].map((key) => key.toLowerCase()),
);
/** Values are checked too: an email or a bearer token can hide inside free text. */
export const emailPattern = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
/**
 * A credential after the scheme is at least 8 characters (a JWT, an API key, base64 of
 * user:password); requiring that keeps prose such as "the bearer token was refused" readable.
 */
const bearerPattern = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
export const jwtPattern = /\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
/**
 * settledesk API keys (src/platform/auth/api-keys.ts): the prefix and whatever follows it, so even
 * a truncated key never reaches a line.
 */
export const apiKeyTokenPattern = /sdk_live_[A-Za-z0-9_-]*/g;
/** Stellar secret seeds: S followed by 55 base32 characters. */
export const stellarSeedPattern = /\bS[A-Z2-7]{55}\b/g;

export const redactedMarker = '[REDACTED]';
const redactDepthMax = 8;

function normalizedKey(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, '');
}

/** `inError`: the key belongs to a serialized error, where `name` is the error's class. */
export function isSensitiveKey(key: string, inError = false): boolean {
  const normalized = normalizedKey(key);
  if (publicKeyNames.has(normalized)) return false;
  if (inError && normalized === 'name') return false;
  return secretKeyPattern.test(key) || personalKeyNames.has(normalized);
}

export function redactString(value: string): string {
  return value
    .replace(bearerPattern, `$1 ${redactedMarker}`)
    .replace(jwtPattern, redactedMarker)
    .replace(apiKeyTokenPattern, redactedMarker)
    .replace(emailPattern, redactedMarker)
    .replace(stellarSeedPattern, redactedMarker);
}

export function redactValue(value: unknown, depth = 0, inError = false): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= redactDepthMax) return '[TRUNCATED]';
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1, inError));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = isSensitiveKey(key, inError)
      ? redactedMarker
      : redactValue(inner, depth + 1, errorKeys.has(key) || (inError && key === 'aggregateErrors'));
  }
  return out;
}

/**
 * PostgreSQL quotes the refused value in data exceptions (class 22: `invalid input syntax for
 * type uuid: "…"`) and in the detail of constraint violations (class 23: `Key (reference)=(…)`,
 * `Failing row contains (…)`), so those errors are logged by code and the names of the table,
 * column and constraint, which say what failed without saying what was sent. A trigger's `raise`
 * (class P0) formats whatever its author chose, often the row, so it is withheld too.
 */
const postgresQuotingClasses = new Set(['22', '23', 'P0']);
const postgresNamingFields = [
  'code',
  'severity',
  'routine',
  'schema_name',
  'table_name',
  'column_name',
  'constraint_name',
] as const;

/** The stack's frames without its first line, which repeats the message. */
function stackFrames(stack: unknown): string {
  if (typeof stack !== 'string') return '';
  return stack
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .join('\n');
}

function withheld(type: string, summary: string, fields: Record<string, unknown>, stack: unknown) {
  const message = `${summary} (message withheld: it may quote the request)`;
  return { type, message, ...fields, stack: `${type}: ${message}\n${stackFrames(stack)}` };
}

/**
 * The `err` serializer. Errors are logged by what failed, never by what the caller sent: the
 * caller still gets the full detail in the problem response, and the log keeps the type and ids.
 * A DomainError's message may quote its input (an unknown asset, a provider reference), so only
 * its problem type and status are written. Fastify's own errors quote the URL, header or content
 * type they refused, so they keep their code. Other errors (programmer errors, network and
 * database failures) are written whole: their messages are ours or the library's.
 */
export function serializeError(error: unknown): unknown {
  if (error instanceof DomainError) return { type: error.name, problem: error.type, status: error.status };
  if (!(error instanceof Error)) return error;
  const serialized: Record<string, unknown> = pino.stdSerializers.err(error);
  const code = typeof serialized.code === 'string' ? serialized.code : '';
  if (error.name === 'PostgresError' && postgresQuotingClasses.has(code.slice(0, 2))) {
    const fields = Object.fromEntries(postgresNamingFields.map((field) => [field, serialized[field]]));
    return withheld('PostgresError', `PostgreSQL ${code}`, fields, serialized.stack);
  }
  if (code.startsWith('FST_')) {
    const fields = { code, statusCode: serialized.statusCode };
    return withheld(String(serialized.type), `Fastify ${code}`, fields, serialized.stack);
  }
  return serialized;
}

/**
 * Redaction runs on the finished line (after pino's serializers), so it sees exactly what would be
 * written, whichever serializer, binding or message produced it. Parsing each line costs a few
 * microseconds; log volume is a few lines per request, so safety wins over pino's raw speed here.
 */
function redactLine(line: string): string {
  const parsed: unknown = JSON.parse(line);
  return `${JSON.stringify(redactValue(parsed))}\n`;
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'settledesk' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
      hooks: { streamWrite: redactLine },
    },
    destination,
  );
}
