import { loadConfig } from '../../src/platform/config.ts';
import { createLogger } from '../../src/platform/logging.ts';
import { openRuntime, type Runtime } from '../../src/platform/runtime.ts';
import { type Service, startService } from '../../src/server.ts';

export type Instance = { runtime: Runtime; service: Service };

/** API instances (no worker) on one database, as a deployment runs several behind a balancer. */
export async function startInstances(env: Record<string, string>, count: number): Promise<Instance[]> {
  const instances: Instance[] = [];
  for (let index = 0; index < count; index += 1) {
    const runtime = await openRuntime(loadConfig(env), createLogger('silent'), {
      migrate: false,
      applicationName: `instance-${index}`,
    });
    instances.push({ runtime, service: await startService(runtime, { worker: false }) });
  }
  return instances;
}

export async function stopInstances(instances: readonly Instance[]): Promise<void> {
  for (const { runtime, service } of instances) {
    await service.stop();
    await runtime.close();
  }
}
