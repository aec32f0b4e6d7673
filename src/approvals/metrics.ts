import { Counter } from 'prom-client';
import { registry } from '../platform/metrics.ts';

export const approvalTransitions = new Counter({
  name: 'approval_transitions_total',
  help: 'Two-person rule proposals by action and transition (proposed, approved, rejected, executed, expired).',
  labelNames: ['action', 'transition'] as const,
  registers: [registry],
});
