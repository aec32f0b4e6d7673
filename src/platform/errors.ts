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
  'request/invalid-cursor': { status: 400, title: 'The cursor is not one this API returned' },
  'request/invalid-value': { status: 400, title: 'A value in the request cannot be stored' },
  'request/conflict': { status: 409, title: 'The request conflicts with a record that already exists' },
  'request/constraint-violated': { status: 422, title: 'The request breaks a rule of the stored data' },
  'request/malformed-url': { status: 400, title: 'The URL is not validly percent-encoded' },
  'request/uri-too-long': { status: 414, title: 'A path parameter is too long' },
  'request/malformed': { status: 400, title: 'The HTTP request could not be parsed' },
  'request/headers-too-large': { status: 431, title: 'The request headers are too large' },
  'request/timeout': { status: 408, title: 'The request was not received in time' },
  'request/rate-limited': { status: 429, title: 'Too many requests from this caller or address' },
  'auth/unauthenticated': { status: 401, title: 'A valid bearer token is required' },
  'auth/forbidden': { status: 403, title: 'The token does not grant the role this route requires' },
  'money/invalid-format': { status: 400, title: 'The amount is not a plain decimal string' },
  'money/too-many-decimals': { status: 400, title: 'The amount has more decimals than the asset allows' },
  'money/sign-not-allowed': { status: 400, title: 'The amount must not be negative' },
  'money/not-positive': { status: 400, title: 'The amount must be greater than zero' },
  'money/too-large': { status: 400, title: 'The amount is above the largest accepted amount' },
  'ledger/account-not-found': { status: 404, title: 'No such account' },
  'ledger/account-closed': { status: 422, title: 'The account is closed' },
  'ledger/unknown-asset': { status: 422, title: 'The asset is not enabled' },
  'ledger/asset-mismatch': { status: 422, title: 'The accounts hold different assets' },
  'ledger/same-account': { status: 422, title: 'Source and destination are the same account' },
  'ledger/insufficient-funds': { status: 422, title: 'Insufficient funds' },
  'ledger/unbalanced': { status: 422, title: 'The entries do not sum to zero per asset' },
  'ledger/transfer-not-found': { status: 404, title: 'No such transfer' },
  'ledger/journal-not-found': { status: 404, title: 'No such journal' },
  'ledger/not-reversible': { status: 422, title: 'Only transfers and adjustments can be reversed' },
  'ledger/already-reversed': { status: 409, title: 'The journal was reversed already' },
  'idempotency/key-required': { status: 400, title: 'An Idempotency-Key header is required' },
  'idempotency/key-reused': { status: 422, title: 'The Idempotency-Key was used with a different request' },
  'idempotency/in-flight': { status: 409, title: 'A request with this Idempotency-Key is still in progress' },
  'approvals/not-found': { status: 404, title: 'No such proposal' },
  'approvals/self-approval': { status: 403, title: 'The proposer cannot approve their own proposal' },
  'approvals/already-reviewed': { status: 409, title: 'This person has already reviewed the proposal' },
  'approvals/not-pending': { status: 409, title: 'The proposal is no longer pending' },
  'approvals/expired': { status: 409, title: 'The proposal has expired' },
  'approvals/payload-mismatch': { status: 409, title: 'The approval does not match the stored payload' },
  'payments/read-only': { status: 503, title: 'Payments are in read_only mode' },
  'webhook/unknown-provider': { status: 404, title: 'No such deposit provider' },
  'webhook/provider-disabled': { status: 403, title: 'The deposit provider is disabled' },
  'webhook/bad-signature': { status: 401, title: 'The webhook signature is missing or does not verify' },
  'webhook/stale-timestamp': { status: 401, title: 'The webhook timestamp is outside the tolerance window' },
  'webhook/reference-mismatch': {
    status: 409,
    title: 'This reference was already received with a different payload',
  },
  'webhook/not-dead-lettered': { status: 409, title: 'The webhook is not in the dead-letter queue' },
  'deposits/provider-not-accepting': {
    status: 409,
    title: 'The deposit provider takes no new intents (read_only or disabled)',
  },
  'deposits/no-previous-routing': { status: 409, title: 'There is no earlier routing to roll back to' },
  'merchant-webhook/invalid-url': { status: 400, title: 'The endpoint URL is not an accepted https URL' },
  'merchant-webhook/forbidden-address': {
    status: 400,
    title: 'The endpoint URL points at an address settledesk does not send to',
  },
  'merchant-webhook/unknown-event-type': { status: 400, title: 'No such merchant webhook event type' },
  'merchant-webhook/endpoint-not-found': { status: 404, title: 'No such merchant webhook endpoint' },
  'merchant-webhook/too-many-endpoints': {
    status: 409,
    title: 'Too many enabled merchant webhook endpoints',
  },
  'merchant-webhook/endpoint-disabled': { status: 409, title: 'The merchant webhook endpoint is disabled' },
  'merchant-webhook/rotation-in-progress': {
    status: 409,
    title: 'The endpoint signs with two secrets already: retire the previous one first',
  },
  'merchant-webhook/no-previous-secret': {
    status: 409,
    title: 'The endpoint signs with one secret: there is no previous one to retire',
  },
  'merchant-webhook/delivery-not-found': { status: 404, title: 'No such merchant webhook delivery' },
  'merchant-webhook/not-dead-lettered': {
    status: 409,
    title: 'The merchant webhook delivery is not in the dead-letter queue',
  },
  'payouts/invalid-destination': { status: 400, title: 'The destination is not a Stellar G… or M… address' },
  'payouts/invalid-memo': { status: 400, title: 'The memo does not fit its type' },
  'payouts/not-found': { status: 404, title: 'No such payout' },
  'payouts/source-not-payable': {
    status: 422,
    title: 'Payouts are paid from customer or merchant accounts only',
  },
  'payouts/not-in-manual-review': { status: 409, title: 'The payout is not in manual review' },
  'payouts/not-pending-approval': { status: 409, title: 'The payout is not waiting for approval' },
  'payouts/already-submitted': {
    status: 409,
    title: 'A transaction paying the payout was built; it can no longer be cancelled',
  },
  'payouts/already-cancelled': { status: 409, title: 'The payout is already cancelled' },
  'payouts/below-account-reserve': {
    status: 422,
    title: 'The amount cannot create the destination account: it is below the minimum balance',
  },
  'payouts/destination-missing': { status: 422, title: 'The destination account does not exist on chain' },
  'payouts/destination-no-trustline': {
    status: 422,
    title: 'The destination account has no trustline for the asset',
  },
  'payouts/destination-is-platform': {
    status: 422,
    title: "The destination is one of the service's own accounts",
  },
  'escrow/hold-not-found': { status: 404, title: 'No such escrow hold' },
  'escrow/invalid-party': {
    status: 422,
    title: 'Payer and payee must be two customer or merchant accounts of the hold asset',
  },
  'escrow/invalid-expiry': { status: 422, title: 'expiresAt must be in the future and within the limit' },
  'escrow/exceeds-remaining': { status: 409, title: 'The amount exceeds what remains of the hold' },
  'escrow/hold-closed': { status: 409, title: 'The hold is closed: nothing remains of it' },
  'escrow/hold-expired': { status: 409, title: 'The hold has expired' },
  'escrow/hold-disputed': {
    status: 409,
    title: 'The hold is disputed: nothing moves until the dispute is resolved',
  },
  'escrow/already-disputed': { status: 409, title: 'The hold is already disputed' },
  'escrow/not-disputed': { status: 409, title: 'The hold is not disputed' },
  'escrow/resolution-mismatch': {
    status: 422,
    title: "The resolution's amounts do not add up to the hold's remainder",
  },
  'escrow/hold-managed': { status: 409, title: 'The hold belongs to a stream: change it through the stream' },
  'streams/not-found': { status: 404, title: 'No such stream' },
  'streams/invalid-schedule': {
    status: 422,
    title: 'The schedule must run from start to end, with the cliff between, within the limits',
  },
  'streams/invalid-recipient': {
    status: 422,
    title: 'The recipient must be one other account of the asset or one Stellar address',
  },
  'streams/already-cancelled': { status: 409, title: 'The stream is already cancelled' },
  'streams/already-completed': { status: 409, title: 'The stream is completed: its total was paid' },
  'streams/ended': {
    status: 409,
    title: 'The stream has ended: everything accrued and the last settlement is due',
  },
  'incidents/not-found': { status: 404, title: 'No such incident' },
  'incidents/illegal-transition': {
    status: 409,
    title: 'The incident cannot move to that status from its own',
  },
  'incidents/resolved': { status: 409, title: 'The incident is resolved: reopen it first' },
  'incidents/snapshot-not-found': { status: 404, title: 'No such triage snapshot' },
  'incidents/pii-detected': {
    status: 422,
    title: 'The message contains personal data or a secret and was not published',
  },
  'incidents/unknown-placeholder': {
    status: 422,
    title: 'The message names a placeholder that does not exist',
  },
  'incidents/missing-field': { status: 422, title: 'A placeholder of the message has no value' },
  'incidents/template-not-applicable': {
    status: 422,
    title: 'The template is not for this kind of message or this status',
  },
  'incidents/unknown-component': { status: 422, title: 'The component is not on the status page' },
  'incidents/action-item-not-found': { status: 404, title: 'No such action item on this incident' },
  'incidents/action-item-illegal-transition': {
    status: 409,
    title: 'The action item cannot move to that status from its own',
  },
  'incidents/action-items-full': { status: 409, title: 'The incident has as many action items as allowed' },
  'incidents/escalation-policy-invalid': {
    status: 400,
    title: 'The escalation policy is not ordered or not within its bounds',
  },
  'incidents/no-open-reminder': { status: 409, title: 'The incident has no open reminder of that kind' },
  'keys/not-found': { status: 404, title: 'No such signing key' },
  'keys/retired': { status: 409, title: 'The signing key is retired' },
  'keys/current': { status: 409, title: 'The current signing key cannot be retired' },
  'api-keys/not-found': { status: 404, title: 'No such API key' },
  'api-keys/too-many': { status: 409, title: 'Too many API keys are usable already' },
  'providers/secret-not-found': { status: 404, title: 'No such provider webhook secret' },
  'providers/secret-retired': { status: 409, title: 'The provider webhook secret is retired' },
  'providers/secret-current': { status: 409, title: 'The current provider webhook secret cannot be retired' },
  'providers/secret-limit': {
    status: 409,
    title: 'The provider already has as many accepted secrets as allowed',
  },
  'reconciliation/finding-not-open': { status: 409, title: 'No open finding with this id' },
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

/**
 * An operating error that a person fixes outside any request: a dependency that is missing or
 * answered wrongly (the embedded PostgreSQL, a database host, a friendbot, a Stellar path), or a
 * setup step not done yet (channel accounts, a running sandbox). Its message names the cause and
 * what to change; the CLI and `serve` print it as one line. A broken invariant of our own code is
 * not one of these: it is an `assert`.
 */
export class OperatingError extends Error {
  override name = 'OperatingError';
}

/**
 * No database server can take a connection now: no host of a multi-host URL accepts writes (the
 * primary is gone and no replica is promoted yet), or the writable host did not accept a
 * connection in time. A request that meets it answers 503 `service/unavailable` with Retry-After
 * (src/platform/http/problems.ts), like a lost connection; a start that meets it prints its message.
 */
export class DatabaseUnavailableError extends OperatingError {
  override name = 'DatabaseUnavailableError';
  /** The `code` label of `http_database_unavailable_total` and of the log line. */
  readonly code = 'NO_WRITABLE_HOST';
}

export function problemFor(
  type: ProblemType,
  detail: string,
  extensions: Record<string, unknown> = {},
): Problem {
  const entry = problemCatalogue[type];
  return { ...extensions, type, title: entry.title, status: entry.status, detail };
}
