import { assert } from '../platform/assert.ts';
import { faultDurationMsMax, faultLatencyMsMax, faultsMax, staleLagLedgersMax } from './limits.ts';

/**
 * Fault injection. Each fault is scoped to a route (`horizon.submit`, `rpc`, `rpc.getHealth`…)
 * and/or a Horizon listener, fires on a share of matching requests, and lasts for a duration or
 * until cleared. Each fault draws from its own random stream seeded from the sandbox seed and the
 * fault's ordinal, so a run replays identically under the same seed whatever other traffic does.
 */

export const faultKinds = [
  'http_error',
  'latency',
  'hang',
  'accepted_timeout',
  'freeze_ledgers',
  'stale_ingestion',
  'listener_down',
  'rpc_unhealthy',
] as const;
export type FaultKind = (typeof faultKinds)[number];

export const httpErrorStatuses = [500, 502, 503, 429] as const;
export type HttpErrorStatus = (typeof httpErrorStatuses)[number];
export const acceptedTimeoutModes = ['status_504', 'drop_connection'] as const;
export type AcceptedTimeoutMode = (typeof acceptedTimeoutModes)[number];

export type FaultSpec = {
  kind: FaultKind;
  route?: string;
  listener?: number;
  /** Share of matching requests affected, 0 to 1. */
  rate?: number;
  durationMs?: number;
  status?: HttpErrorStatus;
  latencyMs?: number;
  lagLedgers?: number;
  mode?: AcceptedTimeoutMode;
};

export type Fault = FaultSpec & { id: string; rate: number; createdAt: string; expiresAt?: string };

export type FaultScope = { route?: string; listener?: number };

type ActiveFault = {
  fault: Fault;
  expiresAtMs: number | undefined;
  random: () => number;
  timer?: NodeJS.Timeout;
};

/** mulberry32: a small, fast, well-distributed 32-bit generator; plenty for fault sampling. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export type SpecCheck = { ok: true; spec: FaultSpec } | { ok: false; detail: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function integerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

const routePattern = /^[a-zA-Z_.]{1,64}$/;
const listenerIndexMax = 16;

/** Validates a fault body from the control API; every field is bounded. */
export function checkFaultSpec(body: unknown): SpecCheck {
  if (!isRecord(body)) return { ok: false, detail: 'the body must be a JSON object' };
  const { kind, route, listener, rate, durationMs, status, latencyMs, lagLedgers, mode } = body;
  if (!faultKinds.includes(kind as FaultKind))
    return { ok: false, detail: `kind must be one of ${faultKinds.join(', ')}` };
  if (route !== undefined && (typeof route !== 'string' || !routePattern.test(route))) {
    return { ok: false, detail: 'route must be a route name such as horizon.submit or rpc' };
  }
  if (listener !== undefined && !integerIn(listener, 0, listenerIndexMax))
    return { ok: false, detail: 'bad listener' };
  if (rate !== undefined && !(typeof rate === 'number' && rate >= 0 && rate <= 1)) {
    return { ok: false, detail: 'rate must be between 0 and 1' };
  }
  if (durationMs !== undefined && !integerIn(durationMs, 1, faultDurationMsMax))
    return { ok: false, detail: 'bad durationMs' };
  const spec = { kind: kind as FaultKind, route, listener, rate, durationMs } as FaultSpec;
  return checkKindFields(spec, { status, latencyMs, lagLedgers, mode });
}

function checkKindFields(spec: FaultSpec, fields: Record<string, unknown>): SpecCheck {
  switch (spec.kind) {
    case 'http_error':
      if (!httpErrorStatuses.includes(fields.status as HttpErrorStatus)) {
        return { ok: false, detail: 'status must be 500, 502, 503 or 429' };
      }
      return { ok: true, spec: { ...spec, status: fields.status as HttpErrorStatus } };
    case 'latency':
      if (!integerIn(fields.latencyMs, 1, faultLatencyMsMax)) return { ok: false, detail: 'bad latencyMs' };
      return { ok: true, spec: { ...spec, latencyMs: fields.latencyMs } };
    case 'stale_ingestion':
      if (!integerIn(fields.lagLedgers, 1, staleLagLedgersMax))
        return { ok: false, detail: 'bad lagLedgers' };
      return { ok: true, spec: { ...spec, lagLedgers: fields.lagLedgers } };
    case 'accepted_timeout': {
      const mode = fields.mode ?? 'status_504';
      if (!acceptedTimeoutModes.includes(mode as AcceptedTimeoutMode))
        return { ok: false, detail: 'bad mode' };
      return { ok: true, spec: { ...spec, mode: mode as AcceptedTimeoutMode } };
    }
    case 'listener_down':
      if (spec.listener === undefined) return { ok: false, detail: 'listener_down needs a listener index' };
      return { ok: true, spec };
    default:
      return { ok: true, spec };
  }
}

function matches(fault: Fault, scope: FaultScope): boolean {
  const routeMatches =
    fault.route === undefined ||
    (scope.route !== undefined && (scope.route === fault.route || scope.route.startsWith(`${fault.route}.`)));
  const listenerMatches = fault.listener === undefined || fault.listener === scope.listener;
  return routeMatches && listenerMatches;
}

export class FaultRegistry {
  private readonly seed: number;
  private readonly clock: () => number;
  private readonly active = new Map<string, ActiveFault>();
  private readonly listeners = new Set<() => void>();
  private ordinal = 0;

  constructor(seed: number, clock: () => number = Date.now) {
    this.seed = seed;
    this.clock = clock;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  isFull(): boolean {
    return this.active.size >= faultsMax;
  }

  add(spec: FaultSpec): Fault {
    assert(this.active.size < faultsMax, `at most ${faultsMax} faults can be active: check isFull() first`);
    this.ordinal += 1;
    const now = this.clock();
    const expiresAtMs = spec.durationMs === undefined ? undefined : now + spec.durationMs;
    const fault: Fault = {
      ...withoutUndefined(spec),
      id: `f${this.ordinal}`,
      rate: spec.rate ?? 1,
      createdAt: new Date(now).toISOString(),
      ...(expiresAtMs === undefined ? {} : { expiresAt: new Date(expiresAtMs).toISOString() }),
    };
    const entry: ActiveFault = {
      fault,
      expiresAtMs,
      random: seededRandom(this.seed + this.ordinal * 0x9e3779b1),
    };
    if (spec.durationMs !== undefined) {
      entry.timer = setTimeout(() => this.remove(fault.id), spec.durationMs);
      entry.timer.unref();
    }
    this.active.set(fault.id, entry);
    this.changed();
    return fault;
  }

  remove(id: string): boolean {
    const entry = this.active.get(id);
    if (entry === undefined) return false;
    clearTimeout(entry.timer);
    this.active.delete(id);
    this.changed();
    return true;
  }

  clear(): number {
    const count = this.active.size;
    for (const entry of this.active.values()) clearTimeout(entry.timer);
    this.active.clear();
    if (count > 0) this.changed();
    return count;
  }

  list(): Fault[] {
    return this.live().map((entry) => entry.fault);
  }

  private live(): ActiveFault[] {
    const now = this.clock();
    return [...this.active.values()].filter(
      (entry) => entry.expiresAtMs === undefined || entry.expiresAtMs > now,
    );
  }

  /** The first fault of this kind that matches the scope and whose random draw fires. */
  fire(kind: FaultKind, scope: FaultScope): Fault | undefined {
    for (const entry of this.live()) {
      if (entry.fault.kind !== kind || !matches(entry.fault, scope)) continue;
      if (entry.random() < entry.fault.rate) return entry.fault;
    }
    return undefined;
  }

  /** Faults that describe a state rather than a per-request event: no random draw. */
  has(kind: FaultKind, scope: FaultScope): Fault | undefined {
    return this.live().find((entry) => entry.fault.kind === kind && matches(entry.fault, scope))?.fault;
  }
}

function withoutUndefined(spec: FaultSpec): FaultSpec {
  return Object.fromEntries(Object.entries(spec).filter(([, value]) => value !== undefined)) as FaultSpec;
}
