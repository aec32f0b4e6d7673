import type { Approvals } from '../approvals/engine.ts';
import { createDomains } from '../domains.ts';
import type { Runtime } from '../platform/runtime.ts';

/** CLI commands build the same domain services the server does, so actions behave identically. */
export function approvalsFor(runtime: Runtime): Approvals {
  return createDomains(runtime).approvals;
}
