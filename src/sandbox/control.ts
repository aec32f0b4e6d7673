import type { RequestContext, Route } from './context.ts';
import { checkFaultSpec } from './faults.ts';
import { badRequest, notFound, sendJson, sendProblem } from './http.ts';
import { faultsMax } from './limits.ts';

/**
 * The control API under `/_sandbox/`: fault injection and on-demand ledger closing. It is never
 * subject to faults itself, so a test or an operator can always clear what it broke.
 */

export type ControlActions = {
  closeLedger(): Promise<{ sequence: number } | undefined>;
  status(): Record<string, unknown>;
};

function readJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

export function controlRoutes(actions: ControlActions): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/_sandbox\/faults\/?$/,
      name: 'control.faults',
      handle: (context: RequestContext) =>
        sendJson(context.response, 200, { faults: context.sandbox.faults.list() }, 'application/json'),
    },
    {
      method: 'POST',
      pattern: /^\/_sandbox\/faults\/?$/,
      name: 'control.faults',
      handle: (context: RequestContext) => {
        const check = checkFaultSpec(readJson(context.body));
        if (!check.ok) return sendProblem(context.response, badRequest('fault', check.detail));
        if (context.sandbox.faults.isFull()) {
          return sendProblem(
            context.response,
            badRequest('fault', `at most ${faultsMax} faults can be active`),
          );
        }
        const fault = context.sandbox.faults.add(check.spec);
        sendJson(context.response, 201, { fault }, 'application/json');
      },
    },
    {
      method: 'DELETE',
      pattern: /^\/_sandbox\/faults\/?$/,
      name: 'control.faults',
      handle: (context: RequestContext) =>
        sendJson(context.response, 200, { cleared: context.sandbox.faults.clear() }, 'application/json'),
    },
    {
      method: 'DELETE',
      pattern: /^\/_sandbox\/faults\/(f\d{1,9})\/?$/,
      name: 'control.faults',
      handle: (context: RequestContext, [id = '']: string[]) => {
        if (!context.sandbox.faults.remove(id)) return sendProblem(context.response, notFound());
        sendJson(context.response, 200, { cleared: 1 }, 'application/json');
      },
    },
    {
      method: 'POST',
      pattern: /^\/_sandbox\/ledgers\/close\/?$/,
      name: 'control.close',
      handle: async (context: RequestContext) => {
        const closed = await actions.closeLedger();
        if (closed === undefined) {
          return sendJson(
            context.response,
            409,
            { closed: false, reason: 'ledger closing is frozen' },
            'application/json',
          );
        }
        sendJson(context.response, 200, { closed: true, sequence: closed.sequence }, 'application/json');
      },
    },
    {
      method: 'GET',
      pattern: /^\/_sandbox\/status\/?$/,
      name: 'control.status',
      handle: (context: RequestContext) =>
        sendJson(context.response, 200, actions.status(), 'application/json'),
    },
  ];
}
