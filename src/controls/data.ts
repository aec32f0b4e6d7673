import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';

export const paymentsModes = ['standard', 'read_only'] as const;
export type PaymentsMode = (typeof paymentsModes)[number];

export type Controls = {
  paymentsMode: PaymentsMode;
  payoutsFrozen: boolean;
  updatedAt: Date;
  updatedBy: string;
  reason: string;
};

const columns = (db: Executor) => db`
  payments_mode as "paymentsMode", payouts_frozen as "payoutsFrozen", updated_at as "updatedAt",
  updated_by as "updatedBy", reason`;

export async function selectControls(db: Executor): Promise<Controls> {
  const [row] = await db<Controls[]>`select ${columns(db)} from payment_controls where singleton`;
  assert(row, 'payment_controls has no row: migrations incomplete');
  return row;
}

/** Sets the mode only if it differs; returns the previous controls, or undefined when unchanged. */
export async function updatePaymentsMode(
  db: Executor,
  mode: PaymentsMode,
  by: string,
  reason: string,
): Promise<number> {
  const result = await db`
    update payment_controls
    set payments_mode = ${mode}::text, updated_at = now(), updated_by = ${by}::text, reason = ${reason}::text
    where singleton and payments_mode <> ${mode}::text`;
  return result.count;
}

export async function updatePayoutsFrozen(
  db: Executor,
  frozen: boolean,
  by: string,
  reason: string,
): Promise<number> {
  const result = await db`
    update payment_controls
    set payouts_frozen = ${frozen}::boolean, updated_at = now(), updated_by = ${by}::text, reason = ${reason}::text
    where singleton and payouts_frozen <> ${frozen}::boolean`;
  return result.count;
}
