import type { TaskMap } from '../platform/jobs.ts';
import type { Runtime } from '../platform/runtime.ts';
import { keyringReencryptTask, reencryptKeyring } from './reencrypt.ts';

export { keyringReencryptCrontab } from './reencrypt.ts';

export function accessTasks(runtime: Runtime): TaskMap {
  return {
    [keyringReencryptTask]: async () => {
      const result = await reencryptKeyring(runtime.sql, runtime.keyring);
      if (result.signingKeys + result.providerSecrets > 0)
        runtime.logger.info(
          { ...result, keyVersion: runtime.keyring.currentKeyVersion },
          'keyring re-sealed',
        );
    },
  };
}
