import { xdr } from '@stellar/stellar-sdk';
import type { ResultCodes } from '../payouts/chain.ts';
import {
  changeTrustCodes,
  createAccountCodes,
  operationOuterCodes,
  paymentCodes,
  transactionCodes,
} from '../sandbox/codes.ts';

/** Horizon's result-code strings (`tx_failed`, `op_no_trust`) from a TransactionResult XDR. */

function nameOf(table: Readonly<Record<string, number>>, code: number): string {
  return Object.entries(table).find(([, value]) => value === code)?.[0] ?? `unknown_${code}`;
}

/** Operation result bodies by operation type (the XDR OperationType value). */
const operationTables: Readonly<Record<number, { field: string; table: Readonly<Record<string, number>> }>> =
  {
    0: { field: 'createAccountResult', table: createAccountCodes },
    1: { field: 'paymentResult', table: paymentCodes },
    6: { field: 'changeTrustResult', table: changeTrustCodes },
  };

type OperationWire = { code: number; tr?: { type: number } & Record<string, { code: number } | number> };
type BodyWire = {
  code: number;
  results?: OperationWire[];
  innerResultPair?: { result: { result: BodyWire } };
};

function operationName(wire: OperationWire): string {
  if (wire.code !== 0 || wire.tr === undefined) return nameOf(operationOuterCodes, wire.code);
  const known = operationTables[wire.tr.type];
  const body = known ? wire.tr[known.field] : undefined;
  if (!known || typeof body !== 'object') return 'op_inner';
  return nameOf(known.table, body.code);
}

export function resultCodesFromXdr(resultXdr: string): ResultCodes {
  const wire = xdr.TransactionResult.fromXdr(resultXdr, 'base64').toXdrObject() as unknown as {
    result: BodyWire;
  };
  const body = wire.result.innerResultPair ? wire.result.innerResultPair.result.result : wire.result;
  return {
    transaction: nameOf(transactionCodes, body.code),
    operations: (body.results ?? []).map(operationName),
  };
}
