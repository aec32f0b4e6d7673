import { entryVersionsMax } from './limits.ts';

/** Ledger entries the sandbox keeps. Amounts are stroops; nothing here is ever a float. */
export type Account = {
  id: string;
  balanceStroops: bigint;
  sequence: bigint;
  subentryCount: number;
  lastModifiedLedger: number;
};

export type CreditAsset = { code: string; issuer: string };

export type Trustline = {
  accountId: string;
  asset: CreditAsset;
  balanceStroops: bigint;
  limitStroops: bigint;
  authorized: boolean;
  lastModifiedLedger: number;
};

export type Entry = { type: 'account'; account: Account } | { type: 'trustline'; trustline: Trustline };

export function accountKey(accountId: string): string {
  return `account:${accountId}`;
}

export function trustlineKey(accountId: string, asset: CreditAsset): string {
  return `trustline:${accountId}:${asset.code}:${asset.issuer}`;
}

export function entryKey(entry: Entry): string {
  return entry.type === 'account'
    ? accountKey(entry.account.id)
    : trustlineKey(entry.trustline.accountId, entry.trustline.asset);
}

export interface EntryReader {
  get(key: string): Entry | undefined;
}

/** One entry's change inside an operation or a fee charge, as ledger meta reports it. */
export type EntryChange = { key: string; before: Entry | undefined; after: Entry | undefined };

/**
 * Copy-on-write view over a parent: a transaction (and each of its operations) works on an overlay
 * and is merged only when it succeeds, which makes every transaction atomic.
 */
export class Overlay implements EntryReader {
  readonly parent: EntryReader;
  readonly writes = new Map<string, Entry | undefined>();

  constructor(parent: EntryReader) {
    this.parent = parent;
  }

  get(key: string): Entry | undefined {
    return this.writes.has(key) ? this.writes.get(key) : this.parent.get(key);
  }

  set(key: string, entry: Entry | undefined): void {
    this.writes.set(key, entry);
  }

  account(id: string): Account | undefined {
    const entry = this.get(accountKey(id));
    return entry?.type === 'account' ? entry.account : undefined;
  }

  trustline(accountId: string, asset: CreditAsset): Trustline | undefined {
    const entry = this.get(trustlineKey(accountId, asset));
    return entry?.type === 'trustline' ? entry.trustline : undefined;
  }

  putAccount(account: Account): void {
    this.set(accountKey(account.id), { type: 'account', account });
  }

  putTrustline(trustline: Trustline): void {
    this.set(trustlineKey(trustline.accountId, trustline.asset), { type: 'trustline', trustline });
  }

  changes(): EntryChange[] {
    return [...this.writes].map(([key, after]) => ({ key, before: this.parent.get(key), after }));
  }

  mergeInto(target: Overlay): void {
    for (const [key, entry] of this.writes) target.set(key, entry);
  }
}

type EntryVersion = { ledger: number; entry: Entry | undefined };

/**
 * The committed state. It keeps the last few versions of each entry so that Horizon can serve
 * reads as of an older ledger when the stale-ingestion fault is on.
 */
export class LedgerState implements EntryReader {
  private readonly current = new Map<string, Entry>();
  private readonly versions = new Map<string, EntryVersion[]>();
  private readonly trustlineKeysByAccount = new Map<string, Set<string>>();

  get(key: string): Entry | undefined {
    return this.current.get(key);
  }

  getAt(key: string, ledger: number): Entry | undefined {
    const history = this.versions.get(key) ?? [];
    for (let index = history.length - 1; index >= 0; index -= 1) {
      const version = history[index];
      if (version !== undefined && version.ledger <= ledger) return version.entry;
    }
    return undefined;
  }

  set(key: string, entry: Entry | undefined, ledger: number): void {
    if (entry === undefined) this.current.delete(key);
    else this.current.set(key, entry);
    const history = this.versions.get(key) ?? [];
    history.push({ ledger, entry });
    if (history.length > entryVersionsMax) history.shift();
    this.versions.set(key, history);
    if (entry?.type === 'trustline') {
      const keys = this.trustlineKeysByAccount.get(entry.trustline.accountId) ?? new Set<string>();
      keys.add(key);
      this.trustlineKeysByAccount.set(entry.trustline.accountId, keys);
    }
  }

  /** Every trustline key the account ever had, so that removed lines still resolve in old views. */
  trustlineKeys(accountId: string): string[] {
    return [...(this.trustlineKeysByAccount.get(accountId) ?? [])];
  }

  entries(): Entry[] {
    return [...this.current.values()];
  }
}
