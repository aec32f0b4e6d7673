import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

/**
 * One central list of what must never reach a log line. Keys are matched at any depth, so a
 * secret nested in a request body or an error's context is caught as well as a top-level one.
 * Secrets are matched by substring (`webhookSecret`, `x-api-key`); personal-data fields by exact
 * name, because substrings such as "address" would also hide Stellar destination addresses.
 */
const secretKeyPattern =
  /authorization|cookie|password|passphrase|secret|token|api[-_]?key|private[-_]?key|signing[-_]?key|seed|credential/i;
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
const emailPattern = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
/**
 * A credential after the scheme is at least 8 characters (a JWT, an API key, base64 of
 * user:password); requiring that keeps prose such as "the bearer token was refused" readable.
 */
const bearerPattern = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
const jwtPattern = /\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
/** Stellar secret seeds: S followed by 55 base32 characters. */
const stellarSeedPattern = /\bS[A-Z2-7]{55}\b/g;

export const redactedMarker = '[REDACTED]';
const redactDepthMax = 8;

export function isSensitiveKey(key: string): boolean {
  return secretKeyPattern.test(key) || personalKeyNames.has(key.toLowerCase().replace(/[-_]/g, ''));
}

export function redactString(value: string): string {
  return value
    .replace(bearerPattern, `$1 ${redactedMarker}`)
    .replace(jwtPattern, redactedMarker)
    .replace(emailPattern, redactedMarker)
    .replace(stellarSeedPattern, redactedMarker);
}

export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= redactDepthMax) return '[TRUNCATED]';
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = isSensitiveKey(key) ? redactedMarker : redactValue(inner, depth + 1);
  }
  return out;
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
      hooks: { streamWrite: redactLine },
    },
    destination,
  );
}
