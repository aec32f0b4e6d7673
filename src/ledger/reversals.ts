import type { Approvals, Payload, ProposalAction, ProposalView } from '../approvals/engine.ts';
import { appendAudit } from '../audit/audit.ts';
import { assertMoneyMovementAllowed } from '../controls/service.ts';
import type { Tx } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { isUuid } from '../platform/ids.ts';
import { selectJournalEntries, selectJournalForUpdate, selectReversalOf } from './data.ts';
import { postJournal } from './service.ts';

export const reversalAction = 'ledger.reversal';
/** The journal kinds a reversal may correct; a reversal itself is not one of them. */
export const reversibleKinds: readonly string[] = ['transfer', 'adjustment'];

export type ReversalPayload = { journalId: string };

function validatePayload(payload: unknown): ReversalPayload {
  const journalId = (payload as Partial<ReversalPayload> | null)?.journalId;
  if (typeof journalId !== 'string' || !isUuid(journalId)) {
    throw new DomainError('request/validation', 'a reversal names the journalId (uuid) it reverses');
  }
  return { journalId };
}

/**
 * Refuses a journal that cannot be reversed now: unknown, of another kind, or reversed already.
 * The journal row stays locked until the transaction ends, so two reversals of it queue.
 */
async function lockReversible(tx: Tx, journalId: string): Promise<void> {
  const journal = await selectJournalForUpdate(tx, journalId);
  if (!journal) throw new DomainError('ledger/journal-not-found', `no journal ${journalId}`);
  if (!reversibleKinds.includes(journal.kind)) {
    throw new DomainError(
      'ledger/not-reversible',
      `a ${journal.kind} journal cannot be reversed; only ${reversibleKinds.join(' and ')} journals can`,
      { kind: journal.kind },
    );
  }
  const reversedBy = await selectReversalOf(tx, journalId);
  if (reversedBy !== undefined) {
    throw new DomainError('ledger/already-reversed', `journal ${journalId} was reversed by ${reversedBy}`, {
      reversedBy,
    });
  }
}

/**
 * A reversal never moves money when it is asked for: it becomes a proposal, and only a second
 * admin's approval posts the reversing journal (each entry of the original, negated).
 */
export async function proposeReversal(
  tx: Tx,
  approvals: Approvals,
  input: { journalId: string; reason: string; proposer: string; requestId?: string },
): Promise<ProposalView> {
  await assertMoneyMovementAllowed(tx);
  const payload = validatePayload({ journalId: input.journalId.toLowerCase() });
  await lockReversible(tx, payload.journalId);
  return approvals.propose(tx, {
    action: reversalAction,
    payload,
    proposer: input.proposer,
    reason: input.reason,
    requestId: input.requestId,
  });
}

export function reversalProposalAction(): ProposalAction {
  return {
    name: reversalAction,
    approvalsRequired: 1,
    validate: (payload) => validatePayload(payload) as unknown as Payload,
    execute: async (tx, payload, context) => {
      const { journalId: reversesId } = payload as unknown as ReversalPayload;
      await assertMoneyMovementAllowed(tx);
      // Lock order: the journal (the work) first, then its accounts in postJournal.
      await lockReversible(tx, reversesId);
      const entries = await selectJournalEntries(tx, reversesId);
      // The ledger's own checks apply: a balance that cannot go negative refuses the reversal.
      const { journalId } = await postJournal(tx, {
        kind: 'reversal',
        entries: entries.map((entry) => ({ accountId: entry.accountId, amountMinor: -entry.amountMinor })),
        reference: context.proposalId,
        reversesId,
        requestId: context.requestId,
      });
      await appendAudit(tx, {
        actor: context.approvers.join(','),
        action: 'journal.reversed',
        subjectType: 'journal_transaction',
        subjectId: journalId,
        after: {
          reversesId,
          proposalId: context.proposalId,
          proposer: context.proposer,
          approvers: context.approvers,
        },
        requestId: context.requestId,
      });
      return { journalId, reversesId };
    },
  };
}
