import type { Sql } from '../db/types.ts';
import type { Logger } from '../logging.ts';
import { countWorkerRun, registerLoop } from '../metrics.ts';
import type { ApiKeys } from './api-keys.ts';
import type { Keyring } from './keyring.ts';
import { accessChannel } from './keyring-data.ts';
import { selectSuspendedUserNames } from './users-data.ts';

/** The in-memory set of suspended users; their tokens are refused even before they expire. */
export class SuspendedUsers {
  #names = new Set<string>();

  async reload(sql: Sql): Promise<void> {
    this.#names = new Set(await selectSuspendedUserNames(sql));
  }

  isSuspended(name: string): boolean {
    return this.#names.has(name);
  }
}

/** The `worker` label of the periodic reload in worker_runs_total. */
export const accessReloadWorker = 'access_reload';

/** What the access channel keeps fresh: signing keys, API keys, suspensions, provider webhook secrets. */
export type AccessState = {
  keyring: Keyring;
  users: SuspendedUsers;
  apiKeys: ApiKeys;
  providerSecrets: { reload(sql: Sql): Promise<void> };
};

/**
 * Keeps keys, API keys, suspensions and provider webhook secrets fresh on every instance without a restart: a NOTIFY on the access
 * channel makes a change visible at once, and a periodic reload covers a missed notification
 * (a dropped LISTEN connection, a failover), bounding staleness by `reloadMs`.
 */
export async function startAccessSync(
  sql: Sql,
  access: AccessState,
  reloadMs: number,
  logger: Logger,
): Promise<() => Promise<void>> {
  registerLoop(accessReloadWorker, reloadMs / 1_000, 'process');
  const reload = async () => {
    try {
      // Provider secrets after the keyring: opening them needs no signing key, so order is free.
      await Promise.all([
        access.keyring.reload(sql),
        access.users.reload(sql),
        access.apiKeys.reload(sql),
        access.providerSecrets.reload(sql),
      ]);
      countWorkerRun(accessReloadWorker, 'success');
    } catch (error) {
      countWorkerRun(accessReloadWorker, 'failed');
      logger.warn({ err: error }, 'access reload failed');
    }
  };
  await reload();
  const subscription = await sql.listen(accessChannel, () => void reload(), reload);
  const timer = setInterval(reload, reloadMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await subscription.unlisten();
  };
}
