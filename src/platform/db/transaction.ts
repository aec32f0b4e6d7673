import type { Sql, Tx } from './types.ts';

/** SQLSTATEs a transaction can simply be run again after: serialization failure, deadlock. */
const retryableCodes = new Set(['40001', '40P01']);
export const transactionRetriesMax = 5;
const backoffBaseMs = 5;
const backoffCapMs = 200;

function isRetryable(error: unknown): boolean {
  return (
    typeof error === 'object' && error !== null && 'code' in error && retryableCodes.has(String(error.code))
  );
}

/**
 * Runs `work` in a transaction, retrying a bounded number of times, with capped exponential
 * backoff and jitter, when PostgreSQL aborts it as a serialization failure or deadlock. Any other
 * error propagates at once. `work` must be safe to run again (it only touches the database).
 */
export async function withTransaction<T>(
  sql: Sql,
  work: (tx: Tx) => Promise<T>,
  retriesMax = transactionRetriesMax,
): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return (await sql.begin(work)) as T;
    } catch (error) {
      if (!isRetryable(error) || attempt >= retriesMax) throw error;
      const ceiling = Math.min(backoffCapMs, backoffBaseMs * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
    }
  }
}
