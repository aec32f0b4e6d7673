import { appendAudit } from '../audit/audit.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { closeFinding, type FindingRow } from './data.ts';
import { refreshFromDatabase } from './metrics.ts';

/**
 * Closing a finding by hand: for the kinds that never close by themselves (a double payout, an
 * unknown outgoing payment, a deposit mismatch) once a person has dealt with them. It moves no
 * money, so one operator may do it, and the audit log keeps who did and why.
 */
export const closeReasonLengthMax = 1_000;

export async function closeFindingByOperator(
  sql: Sql,
  input: { id: string; actor: string; reason: string },
): Promise<FindingRow> {
  if (!/^[0-9a-f-]{36}$/.test(input.id)) {
    throw new DomainError('request/validation', 'the finding id must be a uuid');
  }
  if (input.reason.trim().length === 0 || input.reason.length > closeReasonLengthMax) {
    throw new DomainError('request/validation', `the reason must be 1-${closeReasonLengthMax} characters`);
  }
  const closed = await withTransaction(sql, async (tx) => {
    const row = await closeFinding(tx, input.id, { closedBy: input.actor, closeReason: input.reason });
    if (!row) throw new DomainError('reconciliation/finding-not-open', `no open finding ${input.id}`);
    await appendAudit(tx, {
      actor: input.actor,
      action: 'reconciliation.finding_closed',
      subjectType: 'reconciliation_finding',
      subjectId: row.id,
      after: { kind: row.kind, subject: row.subject, reason: input.reason },
    });
    return row;
  });
  await refreshFromDatabase(sql);
  return closed;
}
