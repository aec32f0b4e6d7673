import { randomBytes } from 'node:crypto';
import { appendAudit } from '../audit/audit.ts';
import type { Keyring } from '../platform/auth/keyring.ts';
import { notifyAccessChanged } from '../platform/auth/keyring-data.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import { DomainError } from '../platform/errors.ts';
import { selectProvider } from './data.ts';
import {
  insertProviderSecret,
  lockProviderSecrets,
  type ProviderSecretRow,
  selectAllProviderSecrets,
  selectProviderSecretForUpdate,
  selectProviderSecrets,
  updatePromoteProviderSecret,
  updateRetireProviderSecret,
} from './provider-secrets-data.ts';

/**
 * Provider webhook secrets in the database, sealed with the keyring encryption key, rotated without
 * a restart: `add` creates a secret accepted at once (the first one of a provider is `current`,
 * later ones `verify_only`), `promote` makes one `current` (the one handed to the provider; the old
 * one stays accepted), `retire` refuses a `verify_only` one. At most `providerSecretsActiveMax` are
 * accepted at a time: the old and the new during the overlap. Each change commits with a NOTIFY on
 * the access channel, so every instance reloads at once, as it does for signing keys.
 *
 * Precedence: a provider with no row here verifies with its `DEPOSIT_WEBHOOK_SECRET_<NAME>`
 * secrets from config; once it has a row (of any state), config is ignored for it, and the first
 * `add` imports the configured secrets so they keep working until retired.
 */

export const providerSecretsActiveMax = 2;
const providerSecretBytes = 32;

export type ProviderSecretSummary = Omit<ProviderSecretRow, 'secretSealed'>;
export type Actor = { name: string; requestId?: string };

export function newProviderSecretId(): string {
  return `ps_${randomBytes(8).toString('hex')}`;
}

/** What a provider is given to sign with: 43 characters of base64url, shown once. */
export function newProviderSecret(): string {
  return randomBytes(providerSecretBytes).toString('base64url');
}

/** The in-memory view of the accepted secrets, reloaded with the signing keys on every instance. */
export class ProviderSecrets {
  #byProvider = new Map<string, readonly string[]>();
  readonly #keyring: Keyring;

  constructor(keyring: Keyring) {
    this.#keyring = keyring;
  }

  async reload(sql: Sql): Promise<void> {
    const byProvider = new Map<string, string[]>();
    for (const row of await selectAllProviderSecrets(sql)) {
      const secrets = byProvider.get(row.provider) ?? [];
      byProvider.set(row.provider, secrets);
      if (row.state === 'retired') continue;
      const secret = this.#keyring.openSecret(row.secretSealed, row.keyVersion).toString('utf8');
      // The current secret first: it is the one a provider signs with after the overlap.
      if (row.state === 'current') secrets.unshift(secret);
      else secrets.push(secret);
    }
    this.#byProvider = byProvider;
  }

  /** The database's accepted secrets when the provider has rows there, else the configured ones. */
  secretsFor(provider: string, configured: readonly string[]): readonly string[] {
    return this.#byProvider.get(provider) ?? configured;
  }
}

export async function listProviderSecrets(db: Executor, provider: string): Promise<ProviderSecretSummary[]> {
  return (await selectProviderSecrets(db, provider)).map(({ secretSealed: _sealed, ...summary }) => summary);
}

export type AddedProviderSecret = {
  id: string;
  state: 'current' | 'verify_only';
  secret: string;
  /** Ids of the configured secrets imported by this first `add`, oldest first. */
  imported: string[];
};

export async function addProviderSecret(
  sql: Sql,
  keyring: Keyring,
  input: { provider: string; configured: readonly string[]; actor: Actor },
): Promise<AddedProviderSecret> {
  return withTransaction(sql, async (tx) => {
    const provider = await selectProvider(tx, input.provider);
    if (provider?.kind !== 'external')
      throw new DomainError('webhook/unknown-provider', `no external deposit provider ${input.provider}`);
    await lockProviderSecrets(tx, provider.name);
    const imported: string[] = [];
    if ((await selectProviderSecrets(tx, provider.name)).length === 0) {
      for (const [index, configured] of input.configured.entries()) {
        const state = index === 0 ? 'current' : 'verify_only';
        imported.push(await insertSecret(tx, keyring, provider.name, state, configured, input.actor, true));
      }
    }
    const active = (await selectProviderSecrets(tx, provider.name)).filter((row) => row.state !== 'retired');
    if (active.length >= providerSecretsActiveMax) {
      throw new DomainError(
        'providers/secret-limit',
        `provider ${provider.name} already has ${active.length} accepted secrets: retire one first`,
      );
    }
    const state = active.some((row) => row.state === 'current') ? 'verify_only' : 'current';
    const secret = newProviderSecret();
    const id = await insertSecret(tx, keyring, provider.name, state, secret, input.actor, false);
    await notifyAccessChanged(tx);
    return { id, state, secret, imported };
  });
}

async function insertSecret(
  tx: Executor,
  keyring: Keyring,
  provider: string,
  state: 'current' | 'verify_only',
  secret: string,
  actor: Actor,
  fromConfig: boolean,
): Promise<string> {
  const id = newProviderSecretId();
  await insertProviderSecret(tx, {
    id,
    provider,
    state,
    secretSealed: keyring.sealSecret(Buffer.from(secret, 'utf8')),
    keyVersion: keyring.currentKeyVersion,
    createdBy: actor.name,
  });
  await audit(tx, actor, fromConfig ? 'provider.secret.imported' : 'provider.secret.added', id, {
    after: { provider, state },
  });
  return id;
}

export async function promoteProviderSecret(
  sql: Sql,
  id: string,
  actor: Actor,
): Promise<ProviderSecretSummary> {
  return withTransaction(sql, async (tx) => {
    const secret = await existingSecret(tx, id);
    if (secret.state === 'retired')
      throw new DomainError('providers/secret-retired', `secret ${id} is retired and cannot be used again`);
    if (secret.state === 'verify_only') {
      await lockProviderSecrets(tx, secret.provider);
      await updatePromoteProviderSecret(tx, secret.provider, id);
      await recordChange(tx, actor, secret, 'current');
    }
    return summary(await existingSecret(tx, id));
  });
}

export async function retireProviderSecret(
  sql: Sql,
  id: string,
  actor: Actor,
): Promise<ProviderSecretSummary> {
  return withTransaction(sql, async (tx) => {
    const secret = await existingSecret(tx, id);
    if (secret.state === 'current') {
      throw new DomainError(
        'providers/secret-current',
        `secret ${id} is current: promote another secret of ${secret.provider} before retiring it`,
      );
    }
    if (secret.state === 'verify_only') {
      await updateRetireProviderSecret(tx, id);
      await recordChange(tx, actor, secret, 'retired');
    }
    return summary(await existingSecret(tx, id));
  });
}

async function existingSecret(db: Executor, id: string): Promise<ProviderSecretRow> {
  const secret = await selectProviderSecretForUpdate(db, id);
  if (!secret) throw new DomainError('providers/secret-not-found', `no provider webhook secret ${id}`);
  return secret;
}

function summary({ secretSealed: _sealed, ...rest }: ProviderSecretRow): ProviderSecretSummary {
  return rest;
}

/** The audit row of a promotion or retirement, and the NOTIFY every instance reloads on. */
async function recordChange(
  tx: Executor,
  actor: Actor,
  secret: ProviderSecretRow,
  to: 'current' | 'retired',
): Promise<void> {
  await audit(
    tx,
    actor,
    to === 'current' ? 'provider.secret.promoted' : 'provider.secret.retired',
    secret.id,
    {
      before: { state: secret.state },
      after: { provider: secret.provider, state: to },
    },
  );
  await notifyAccessChanged(tx);
}

async function audit(
  db: Executor,
  actor: Actor,
  action: string,
  id: string,
  change: { before?: unknown; after: unknown },
): Promise<void> {
  await appendAudit(db, {
    actor: actor.name,
    action,
    subjectType: 'provider_webhook_secret',
    subjectId: id,
    ...change,
    requestId: actor.requestId,
  });
}
