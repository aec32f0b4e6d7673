import { uuidPatternSource } from '../platform/ids.ts';
import { emailPattern, jwtPattern, stellarSeedPattern } from '../platform/logging.ts';

/**
 * The personal-data check every public incident message passes before it is published: pure, so
 * the API, the CLI and a preview give the same answer. It refuses rather than redacts: a message
 * with a customer's address in it is written again by a person, never published with a hole in it.
 * The rules follow the PII rules of docs/runbooks/oncall.md; the log redaction of
 * src/platform/logging.ts shares its email, JWT and secret-seed patterns with it.
 */

/** Each kind of match with the reason it may not be published. Kinds are stable identifiers. */
export const piiKinds = {
  email: 'an email address identifies a person',
  phone: 'a phone number identifies a person',
  stellar_address: 'a Stellar account address (G…) identifies one customer',
  stellar_muxed_address: 'a muxed Stellar address (M…) identifies one customer',
  stellar_secret_key: 'a Stellar secret key (S…) controls an account: it is a secret',
  transaction_hash: "a transaction hash points at one customer's payment",
  uuid: 'an account, customer, payout or transfer id',
  customer_ref: 'a customer or merchant reference (an ownerRef such as cust-123)',
  personal_name: 'a personal name on the redaction list',
  bearer_token: 'a bearer credential: it is a secret',
  jwt: 'a JSON Web Token: it is a secret',
} as const;
export type PiiKind = keyof typeof piiKinds;

/** `offset` counts UTF-16 code units from the start of the checked text, as JavaScript strings do. */
export type PiiMatch = { kind: PiiKind; text: string; offset: number; reason: string };

/**
 * Patterns, each anchored so it does not match inside a longer word. Stellar keys are matched by
 * shape, not checksum: a mistyped address is still one customer's address.
 */
const patterns: readonly { kind: PiiKind; pattern: RegExp }[] = [
  { kind: 'jwt', pattern: jwtPattern },
  // A credential after the scheme is long and not a word: "Bearer authentication" stays allowed.
  {
    kind: 'bearer_token',
    pattern: /\bBearer\s+(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{16,}/gi,
  },
  { kind: 'email', pattern: emailPattern },
  { kind: 'stellar_secret_key', pattern: stellarSeedPattern },
  { kind: 'stellar_address', pattern: /\bG[A-Z2-7]{55}\b/g },
  { kind: 'stellar_muxed_address', pattern: /\bM[A-Z2-7]{68}\b/g },
  { kind: 'transaction_hash', pattern: /\b[0-9a-fA-F]{64}\b/g },
  // The one id definition, unanchored and in any case: an id pasted in upper case is still an id.
  { kind: 'uuid', pattern: new RegExp(`\\b${uuidPatternSource.slice(1, -1)}\\b`, 'gi') },
  // ownerRef is free text; references are written like cust-123, cus_9fA2, merchant:42, acct7. A
  // digit is required, so "customer-facing" and "accounts" stay allowed.
  {
    kind: 'customer_ref',
    pattern:
      /\b(?:cust|cus|customer|merchant|mer|acct|acc|account|user|usr|owner)(?:[-_:#][A-Za-z0-9]*\d[A-Za-z0-9]*|\d[A-Za-z0-9]*)\b/gi,
  },
];

/**
 * Dates and clock times are the numbers status text is made of ("since 2026-12-06 14:05 UTC"):
 * they are blanked, keeping every offset, before phone numbers are looked for.
 */
const dateTimePattern =
  /\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?)?\b|\b\d{1,2}:\d{2}(?::\d{2})?\b/g;
/** Digits joined by at most two of space, dot, dash and parentheses, with an optional `+` or `00`. */
const phoneCandidatePattern = /(?<![\w.+])(?:\+|\b)\d(?:[ .\-()]{0,2}\d){5,16}\b/g;
const phoneDigitsMin = 7;
const phoneDigitsMax = 15;
/** A bare run of digits is a phone number only from this length: 8-digit ledger numbers are not. */
const phoneBareDigitsMin = 10;

function phoneMatches(text: string): PiiMatch[] {
  const blanked = text.replace(dateTimePattern, (found) => 'x'.repeat(found.length));
  const matches: PiiMatch[] = [];
  for (const found of blanked.matchAll(phoneCandidatePattern)) {
    const candidate = found[0];
    const digits = candidate.replace(/\D/g, '').length;
    const bare = /^\d+$/.test(candidate);
    if (digits < phoneDigitsMin || digits > phoneDigitsMax) continue;
    if (bare && digits < phoneBareDigitsMin) continue;
    matches.push(match('phone', candidate, found.index));
  }
  return matches;
}

function match(kind: PiiKind, text: string, offset: number): PiiMatch {
  return { kind, text, offset, reason: piiKinds[kind] };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * One pattern for the whole redaction list, longest names first so "Ann Lee" wins over "Ann".
 * Case is ignored and any run of spaces in a name matches any run of white space.
 */
function namesPattern(names: readonly string[]): RegExp | undefined {
  const cleaned = [...new Set(names.map((name) => name.trim()).filter((name) => name.length > 0))];
  if (cleaned.length === 0) return undefined;
  const alternatives = cleaned
    .sort((a, b) => b.length - a.length)
    .map((name) => name.split(/\s+/).map(escapeRegExp).join('\\s+'));
  return new RegExp(`(?<![\\p{L}\\p{N}_])(?:${alternatives.join('|')})(?![\\p{L}\\p{N}_])`, 'giu');
}

/** Drops a match that lies inside a longer one (the JWT inside "Bearer eyJ…" is reported once). */
function outermost(matches: PiiMatch[]): PiiMatch[] {
  const sorted = [...matches].sort((a, b) => a.offset - b.offset || b.text.length - a.text.length);
  const kept: PiiMatch[] = [];
  for (const candidate of sorted) {
    const container = kept.find(
      (outer) =>
        outer.offset <= candidate.offset &&
        candidate.offset + candidate.text.length <= outer.offset + outer.text.length,
    );
    if (!container) kept.push(candidate);
  }
  return kept;
}

export type PiiCheck = (text: string) => PiiMatch[];

/**
 * A check for one redaction list (its bounds are config's: PII_REDACTION_NAMES), compiled once;
 * the matches come in order of offset.
 */
export function createPiiCheck(options: { redactionNames: readonly string[] }): PiiCheck {
  const names = namesPattern(options.redactionNames);
  return (text) => {
    const found: PiiMatch[] = [];
    for (const { kind, pattern } of patterns) {
      for (const hit of text.matchAll(pattern)) found.push(match(kind, hit[0], hit.index));
    }
    if (names) for (const hit of text.matchAll(names)) found.push(match('personal_name', hit[0], hit.index));
    return outermost([...found, ...phoneMatches(text)]);
  };
}
