import { formatAmount } from '../money/money.ts';
import type { Executor } from '../platform/db/types.ts';
import { type CursorPosition, encodeCursor } from '../platform/http/cursor.ts';
import { type SuspenseReason, selectSuspense } from './data.ts';

/** Deposits held in `deposit_suspense`, for the person who attributes them (newest first). */

export const suspensePageMax = 200;

export type SuspenseView = {
  depositId: string;
  provider: string;
  reference: string;
  source: string;
  reason: SuspenseReason;
  asset: string;
  amount: string;
  intentId: string | null;
  heldAt: string;
};

export async function listSuspense(
  db: Executor,
  page: { limit: number; before?: CursorPosition },
): Promise<{ items: SuspenseView[]; nextCursor: string | null }> {
  const rows = await selectSuspense(db, page);
  const items = rows.map((row) => ({
    depositId: row.depositId,
    provider: row.provider,
    reference: row.reference,
    source: row.source,
    reason: row.reason,
    asset: row.asset,
    amount: formatAmount(row.amountMinor, row.precision),
    intentId: row.intentId,
    heldAt: row.createdAt.toISOString(),
  }));
  const last = rows.at(-1);
  const nextCursor =
    rows.length === page.limit && last
      ? encodeCursor({ createdAt: last.createdAt, id: last.depositId })
      : null;
  return { items, nextCursor };
}
