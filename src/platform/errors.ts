/**
 * The error catalogue: every problem `type` the API can return, with its HTTP status and title,
 * in one table. Types are stable identifiers (relative URI references, RFC 9457 §3.1.1):
 * operators and clients match on them, so an entry is never renamed or reused; a new condition
 * gets a new entry. `docs/errors.md` documents each one and a test keeps the two in step.
 */
export const problemCatalogue = {
  'request/validation': { status: 400, title: 'The request does not match the schema' },
  'request/malformed-body': { status: 400, title: 'The request body could not be parsed' },
  'request/body-too-large': { status: 413, title: 'The request body is too large' },
  'request/unsupported-media-type': { status: 415, title: 'The request content type is not supported' },
  'request/not-found': { status: 404, title: 'No such route' },
  'auth/unauthenticated': { status: 401, title: 'A valid bearer token is required' },
  'auth/forbidden': { status: 403, title: 'The token does not grant the role this route requires' },
  'approvals/not-found': { status: 404, title: 'No such proposal' },
  'approvals/self-approval': { status: 403, title: 'The proposer cannot approve their own proposal' },
  'approvals/already-reviewed': { status: 409, title: 'This person has already reviewed the proposal' },
  'approvals/not-pending': { status: 409, title: 'The proposal is no longer pending' },
  'approvals/expired': { status: 409, title: 'The proposal has expired' },
  'approvals/payload-mismatch': { status: 409, title: 'The approval does not match the stored payload' },
  'payments/read-only': { status: 503, title: 'Payments are in read_only mode' },
  'keys/not-found': { status: 404, title: 'No such signing key' },
  'keys/retired': { status: 409, title: 'The signing key is retired' },
  'keys/current': { status: 409, title: 'The current signing key cannot be retired' },
  'service/unavailable': { status: 503, title: 'The service is temporarily unavailable' },
  internal: { status: 500, title: 'Internal server error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemType = keyof typeof problemCatalogue;

export type Problem = {
  type: ProblemType;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  [extension: string]: unknown;
};

/**
 * An expected, operating error: bad input, a refused state change, a missing record. It carries
 * a stable catalogue type; its detail is safe to show to the caller.
 */
export class DomainError extends Error {
  override name = 'DomainError';
  readonly type: ProblemType;
  readonly status: number;
  readonly extensions: Readonly<Record<string, unknown>>;
  constructor(type: ProblemType, detail: string, extensions: Record<string, unknown> = {}) {
    super(detail);
    this.type = type;
    this.status = problemCatalogue[type].status;
    this.extensions = extensions;
  }
}

export function problemFor(
  type: ProblemType,
  detail: string,
  extensions: Record<string, unknown> = {},
): Problem {
  const entry = problemCatalogue[type];
  return { ...extensions, type, title: entry.title, status: entry.status, detail };
}
