import { appendAudit } from '../audit/audit.ts';
import {
  selectProviderSecretsSealedElsewhere,
  updateProviderSecretSeal,
} from '../deposits/provider-secrets-data.ts';
import type { Keyring } from '../platform/auth/keyring.ts';
import { selectKeysSealedElsewhere, updateKeySeal } from '../platform/auth/keyring-data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql } from '../platform/db/types.ts';

/**
 * Keyring key rotation: with a new `SETTLEDESK_KEYRING_KEY` and the old one in
 * `SETTLEDESK_KEYRING_PREVIOUS_KEYS`, the `keyring_reencrypt` job re-seals every signing key and
 * provider webhook secret still under an older key, a bounded batch per transaction, each batch
 * with its audit row. Once it reports nothing left, the old key can be dropped from config.
 */

export const keyringReencryptTask = 'keyring_reencrypt';
export const keyringReencryptCrontab = `*/5 * * * * ${keyringReencryptTask}`;
/** Secrets of each kind re-sealed per transaction: short transactions, few rows locked. */
export const reencryptBatchMax = 100;

export type ReencryptResult = { signingKeys: number; providerSecrets: number };

export async function reencryptKeyring(sql: Sql, keyring: Keyring): Promise<ReencryptResult> {
  const total = { signingKeys: 0, providerSecrets: 0 };
  for (;;) {
    const batch = await reencryptBatch(sql, keyring);
    total.signingKeys += batch.signingKeys;
    total.providerSecrets += batch.providerSecrets;
    if (batch.signingKeys < reencryptBatchMax && batch.providerSecrets < reencryptBatchMax) return total;
  }
}

async function reencryptBatch(sql: Sql, keyring: Keyring): Promise<ReencryptResult> {
  const version = keyring.currentKeyVersion;
  return withTransaction(sql, async (tx) => {
    const keys = await selectKeysSealedElsewhere(tx, version, reencryptBatchMax);
    for (const key of keys) {
      const secret = keyring.openSecret(key.secretSealed, key.keyVersion);
      await updateKeySeal(tx, key.kid, keyring.sealSecret(secret), version);
    }
    const secrets = await selectProviderSecretsSealedElsewhere(tx, version, reencryptBatchMax);
    for (const row of secrets) {
      const secret = keyring.openSecret(row.secretSealed, row.keyVersion);
      await updateProviderSecretSeal(tx, row.id, keyring.sealSecret(secret), version);
    }
    const result = { signingKeys: keys.length, providerSecrets: secrets.length };
    if (keys.length + secrets.length > 0) {
      const from = [...new Set([...keys, ...secrets].map((row) => row.keyVersion ?? 'unversioned'))].sort();
      await appendAudit(tx, {
        actor: 'system',
        action: 'keyring.reencrypted',
        subjectType: 'keyring_key',
        subjectId: version,
        after: { ...result, from },
      });
    }
    return result;
  });
}
