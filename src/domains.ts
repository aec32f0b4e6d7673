import { healthRoutes } from './platform/health.ts';
import { heartbeat, heartbeatCrontab, heartbeatTask, workersCheck } from './platform/heartbeat.ts';
import type { RouteModule } from './platform/http/app.ts';
import type { TaskMap } from './platform/jobs.ts';
import type { Runtime } from './platform/runtime.ts';

/**
 * The one place that lists what each domain contributes: routes (registered in this order after
 * the platform plugins), background tasks, cron lines and readiness checks.
 */
export function domainRoutes(runtime: Runtime): RouteModule[] {
  runtime.health.register(workersCheck(runtime.sql));
  return [healthRoutes(runtime.health)];
}

export function domainTasks(runtime: Runtime): TaskMap {
  return { [heartbeatTask]: heartbeat(runtime.sql) };
}

export const domainCrontab = [heartbeatCrontab].join('\n');
