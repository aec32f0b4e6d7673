import { Counter } from 'prom-client';
import { registry } from '../platform/metrics.ts';

/** Incremented by the reconciliation detector for each asset found not to sum to zero; it pages. */
export const ledgerImbalance = new Counter({
  name: 'ledger_imbalance_total',
  help: 'Times the ledger was found not to sum to zero, by currency (asset). Any increase is a P0.',
  labelNames: ['currency'] as const,
  registers: [registry],
});
