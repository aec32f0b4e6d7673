import { randomUUID } from 'node:crypto';
import { sleep } from './harness.ts';

/** One `POST /v1/transfers` as a client saw it; times are `performance.now()` of this process. */
export type TransferAttempt = {
  key: string;
  /** The JSON body sent: a replay must send it again byte for byte. */
  body: string;
  try: number;
  startedAt: number;
  endedAt: number;
  /** HTTP status, or 0 when no answer came (connection error, timeout). */
  status: number;
  replayed: boolean;
  /** The `Retry-After` header of the answer, as sent. */
  retryAfter: string | undefined;
  transferId: string | undefined;
  problemType: string | undefined;
};

export type TransferLoadOptions = {
  url: string;
  token: string;
  /** Funded accounts of one asset; each transfer moves `amount` between two of them. */
  accounts: readonly string[];
  amount: string;
  clients: number;
  /** Total requests over all clients, retries included. */
  requestsMax: number;
  requestTimeoutMs: number;
  /** Tries per Idempotency-Key on 5xx or no answer; then the client gives the key up. */
  triesPerKeyMax: number;
};

const pauseAfterFailureMs = 100;

/**
 * A few concurrent API clients that keep posting transfers, loopback only, bounded in requests.
 * Each client behaves as a careful client should: it retries a failed request with the same
 * Idempotency-Key (so a transfer committed before its answer was lost is replayed, not repeated),
 * and gives a key up after `triesPerKeyMax` tries or on 409 (another request still holds it).
 * The transfer's `reference` is its key, so the ledger shows which key each posting came from.
 */
export class TransferLoad {
  readonly attempts: TransferAttempt[] = [];
  readonly #options: TransferLoadOptions;
  #stopped = false;
  #requests = 0;
  #clients: Promise<void>[] = [];

  constructor(options: TransferLoadOptions) {
    this.#options = options;
  }

  start(): void {
    this.#clients = Array.from({ length: this.#options.clients }, (_, index) => this.#client(index));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#clients);
  }

  /** The first answer of each key that was acknowledged (2xx). */
  acknowledged(): TransferAttempt[] {
    const seen = new Set<string>();
    return this.attempts.filter((attempt) => {
      if (attempt.status < 200 || attempt.status >= 300 || seen.has(attempt.key)) return false;
      seen.add(attempt.key);
      return true;
    });
  }

  /** Answers a careful client would not expect: 4xx other than 409 (in flight). */
  unexpected(): TransferAttempt[] {
    return this.attempts.filter(
      (attempt) => attempt.status >= 400 && attempt.status < 500 && attempt.status !== 409,
    );
  }

  /** How many answers had each status; 0 counts requests with no answer. */
  countsByStatus(): Map<number, number> {
    const counts = new Map<number, number>();
    for (const attempt of this.attempts) counts.set(attempt.status, (counts.get(attempt.status) ?? 0) + 1);
    return counts;
  }

  /**
   * Retries refused with 409 `idempotency/in-flight` after an earlier try of their key answered
   * 5xx: that failed request did not release its key, so the client could not retry it. A key
   * with a try that got no answer is left out: that request may really still be running.
   */
  heldAfterFailure(): TransferAttempt[] {
    const failed = new Set<string>();
    const unanswered = new Set<string>();
    const held: TransferAttempt[] = [];
    for (const attempt of this.attempts) {
      if (attempt.status === 409 && failed.has(attempt.key) && !unanswered.has(attempt.key))
        held.push(attempt);
      if (attempt.status >= 500) failed.add(attempt.key);
      if (attempt.status === 0) unanswered.add(attempt.key);
    }
    return held;
  }

  async #client(index: number): Promise<void> {
    const { accounts } = this.#options;
    let sequence = 0;
    while (!this.#stopped && this.#requests < this.#options.requestsMax) {
      sequence += 1;
      const key = `drill-${index}-${sequence}-${randomUUID()}`;
      const source = accounts[(index + sequence) % accounts.length]!;
      const destination = accounts[(index + sequence + 1) % accounts.length]!;
      const body = JSON.stringify({
        sourceAccountId: source,
        destinationAccountId: destination,
        amount: this.#options.amount,
        reference: key,
      });
      for (let attempt = 1; attempt <= this.#options.triesPerKeyMax; attempt += 1) {
        if (this.#stopped || this.#requests >= this.#options.requestsMax) return;
        this.#requests += 1;
        const result = await this.#post(key, attempt, body);
        this.attempts.push(result);
        if (result.status >= 200 && result.status < 500) break;
        await sleep(pauseAfterFailureMs);
      }
    }
  }

  async #post(key: string, attempt: number, body: string): Promise<TransferAttempt> {
    const startedAt = performance.now();
    const outcome = {
      key,
      body,
      try: attempt,
      startedAt,
      replayed: false,
      retryAfter: undefined,
      transferId: undefined,
      problemType: undefined,
    };
    try {
      const response = await fetch(`${this.#options.url}/v1/transfers`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.#options.token}`,
          'content-type': 'application/json',
          'idempotency-key': key,
        },
        body,
        signal: AbortSignal.timeout(this.#options.requestTimeoutMs),
      });
      const json = (await response.json().catch(() => ({}))) as { id?: unknown; type?: unknown };
      return {
        ...outcome,
        endedAt: performance.now(),
        status: response.status,
        replayed: response.headers.get('idempotent-replayed') === 'true',
        retryAfter: response.headers.get('retry-after') ?? undefined,
        transferId: typeof json.id === 'string' ? json.id : undefined,
        problemType: typeof json.type === 'string' ? json.type : undefined,
      };
    } catch {
      return { ...outcome, endedAt: performance.now(), status: 0 };
    }
  }
}
