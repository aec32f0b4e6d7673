import { Gauge } from 'prom-client';
import { Type } from 'typebox';
import type { App } from './http/app.ts';
import { registry } from './metrics.ts';

export type CheckStatus = 'ok' | 'degraded' | 'down';
export type CheckResult = { status: CheckStatus; detail?: string };
/** `critical`: the service cannot do its job without it, so readiness fails when it is down. */
export type DependencyCheck = { name: string; critical: boolean; check: () => Promise<CheckResult> };

const checkTimeoutMs = 2_000;

/**
 * What `dependency_up` says of each status. Degraded sits between so that `== 0` still means down
 * (PostgresqlNotReady and the runbooks' queries say so) while `< 1` finds degraded ones too.
 */
export const dependencyUpValues: Readonly<Record<CheckStatus, number>> = { ok: 1, degraded: 0.5, down: 0 };

export const dependencyUp = new Gauge({
  name: 'dependency_up',
  help: 'The last readiness check of each dependency: 1 ok, 0.5 degraded, 0 down.',
  labelNames: ['dependency'] as const,
  registers: [registry],
});

/** Domains add the dependencies they need; readiness reports each one. */
export class HealthRegistry {
  readonly #checks: DependencyCheck[] = [];

  register(check: DependencyCheck): void {
    this.#checks.push(check);
  }

  async run(): Promise<{ ready: boolean; checks: Record<string, CheckReport> }> {
    const reports = await Promise.all(this.#checks.map((check) => runCheck(check)));
    const checks: Record<string, CheckReport> = {};
    for (const report of reports) {
      checks[report.name] = report;
      dependencyUp.set({ dependency: report.name }, dependencyUpValues[report.status]);
    }
    const ready = reports.every((report) => !report.critical || report.status !== 'down');
    return { ready, checks };
  }
}

type CheckReport = {
  name: string;
  critical: boolean;
  status: CheckStatus;
  latencyMs: number;
  detail?: string;
};

async function runCheck(check: DependencyCheck): Promise<CheckReport> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ status: 'down', detail: `no answer within ${checkTimeoutMs} ms` }),
      checkTimeoutMs,
    );
  });
  const result = await Promise.race([
    check.check().catch((error: unknown): CheckResult => ({ status: 'down', detail: describe(error) })),
    timeout,
  ]);
  clearTimeout(timer);
  const latencyMs = Math.round(performance.now() - started);
  return { name: check.name, critical: check.critical, latencyMs, ...result };
}

function describe(error: unknown): string {
  if (error instanceof Error && 'code' in error) return `${String(error.code)}: ${error.message}`;
  return error instanceof Error ? error.message : 'check failed';
}

const CheckSchema = Type.Object({
  name: Type.String(),
  critical: Type.Boolean(),
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('down')]),
  latencyMs: Type.Integer(),
  detail: Type.Optional(Type.String()),
});
const ReadySchema = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  checks: Type.Record(Type.String(), CheckSchema),
});

export function healthRoutes(health: HealthRegistry) {
  return (app: App): void => {
    app.get(
      '/health/live',
      {
        config: { access: 'public', rateLimit: false },
        schema: { tags: ['health'], response: { 200: Type.Object({ status: Type.Literal('live') }) } },
      },
      async () => ({ status: 'live' as const }),
    );
    app.get(
      '/health/ready',
      {
        config: { access: 'public', rateLimit: false },
        schema: { tags: ['health'], response: { 200: ReadySchema, 503: ReadySchema } },
      },
      async (_request, reply) => {
        const { ready, checks } = await health.run();
        return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
      },
    );
    app.get(
      '/metrics',
      {
        config: { access: 'public', rateLimit: false },
        schema: { tags: ['health'], produces: ['text/plain'], response: { 200: Type.String() } },
      },
      async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
    );
  };
}
