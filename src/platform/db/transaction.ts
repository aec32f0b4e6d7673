import { Counter } from 'prom-client';
import { registry } from '../metrics.ts';
import type { Sql, Tx } from './types.ts';

/** SQLSTATEs a transaction can simply be run again after: serialization failure, deadlock. */
const retryableCodes = ['40001', '40P01'] as const;
type RetryableCode = (typeof retryableCodes)[number];
export const transactionRetriesMax = 5;
const backoffBaseMs = 5;
const backoffCapMs = 200;

/**
 * Each retry, by SQLSTATE. Ledger postings lock accounts in id order, so `40P01` (deadlock) should
 * stay at zero: an increase means some writer locks in another order, which is a bug to find.
 */
export const transactionRetries = new Counter({
  name: 'db_transaction_retries_total',
  help: 'Transactions run again after a serialization failure (40001) or deadlock (40P01), by sqlstate.',
  labelNames: ['sqlstate'] as const,
  registers: [registry],
});
for (const sqlstate of retryableCodes) transactionRetries.inc({ sqlstate }, 0);

function retryableCode(error: unknown): RetryableCode | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return retryableCodes.find((code) => code === error.code);
}

/**
 * `repeatable read` gives a detector one consistent snapshot across several reads; everything else
 * runs at PostgreSQL's default, read committed, and relies on row locks taken in a fixed order.
 */
export type IsolationLevel = 'repeatable read' | 'serializable';
export type TransactionOptions = { retriesMax?: number; isolation?: IsolationLevel };

/**
 * Runs `work` in a transaction, retrying at most `retriesMax` times, with capped exponential
 * backoff and full jitter, when PostgreSQL aborts it as a serialization failure or deadlock. Any
 * other error propagates at once. `work` must be safe to run again (it only touches the database).
 * This is the only place a transaction is opened: a tidy test refuses `.begin(` anywhere else.
 */
export async function withTransaction<T>(
  sql: Sql,
  work: (tx: Tx) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const retriesMax = options.retriesMax ?? transactionRetriesMax;
  for (let attempt = 0; ; attempt += 1) {
    try {
      const isolation = options.isolation;
      const result =
        isolation === undefined ? sql.begin(work) : sql.begin(`isolation level ${isolation}`, work);
      return (await result) as T;
    } catch (error) {
      const code = retryableCode(error);
      if (code === undefined || attempt >= retriesMax) throw error;
      transactionRetries.inc({ sqlstate: code });
      const ceiling = Math.min(backoffCapMs, backoffBaseMs * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
    }
  }
}
