import { randomUUID } from 'node:crypto';
import type { Sql } from '../../src/platform/db/types.ts';

/**
 * Issues a provider reference for an account, as `POST /v1/deposits/intents` does, for tests that
 * choose their own references: a provider webhook credits only a reference settledesk issued.
 */
export async function issueReference(
  sql: Sql,
  intent: { provider: string; reference: string; accountId: string; amountMinor?: bigint },
): Promise<void> {
  await sql`
    insert into deposit_intents (id, account_id, provider, reference, amount_minor, created_by)
    values (${randomUUID()}::uuid, ${intent.accountId}::uuid, ${intent.provider}::text, ${intent.reference}::text,
            ${intent.amountMinor ?? null}::int8, 'test')
    on conflict (provider, reference) where reference is not null do nothing`;
}
