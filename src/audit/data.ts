import type { Executor } from '../platform/db/types.ts';

export type AuditEntry = {
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  before?: unknown;
  after?: unknown;
  requestId?: string;
};

export type ChainRow = {
  id: bigint;
  chainPosition: bigint | null;
  prevHash: string | null;
  hash: string | null;
  digestInput: string;
};

/** Arbitrary but fixed: only one sealer chains rows at a time. */
export const sealerLockKey = 7_340_002;

export async function insertAudit(db: Executor, entry: AuditEntry): Promise<void> {
  await db`
    insert into audit_log (actor, action, subject_type, subject_id, before, after, request_id)
    values (
      ${entry.actor}::text, ${entry.action}::text, ${entry.subjectType}::text, ${entry.subjectId}::text,
      ${entry.before === undefined ? null : db.json(entry.before as never)}::jsonb,
      ${entry.after === undefined ? null : db.json(entry.after as never)}::jsonb,
      ${entry.requestId ?? null}::text
    )`;
}

export async function tryLockSealer(db: Executor): Promise<boolean> {
  const [row] = await db<{ locked: boolean }[]>`select pg_try_advisory_xact_lock(${sealerLockKey}) as locked`;
  return row?.locked === true;
}

export async function selectChainHead(
  db: Executor,
): Promise<{ chainPosition: bigint; hash: string } | undefined> {
  const [row] = await db<{ chainPosition: bigint; hash: string }[]>`
    select chain_position as "chainPosition", hash from audit_log
    where chain_position is not null order by chain_position desc limit 1`;
  return row;
}

/** Unsealed rows whose inserting transaction has finished, in id order. */
export async function selectSealable(db: Executor, limit: number): Promise<ChainRow[]> {
  return db<ChainRow[]>`
    select id, chain_position as "chainPosition", prev_hash as "prevHash", hash, audit_digest_input(a) as "digestInput"
    from audit_log a
    where hash is null and txid < pg_snapshot_xmin(pg_current_snapshot())
    order by id
    limit ${limit}::int`;
}

export async function updateSeals(
  db: Executor,
  seals: readonly { id: bigint; chainPosition: bigint; prevHash: string; hash: string }[],
): Promise<void> {
  await db`
    update audit_log a set chain_position = s.chain_position, prev_hash = s.prev_hash, hash = s.hash
    from unnest(
      ${seals.map((seal) => seal.id.toString())}::bigint[],
      ${seals.map((seal) => seal.chainPosition.toString())}::bigint[],
      ${seals.map((seal) => seal.prevHash)}::text[],
      ${seals.map((seal) => seal.hash)}::text[]
    ) as s(id, chain_position, prev_hash, hash)
    where a.id = s.id and a.hash is null`;
}

export async function selectChainPage(
  db: Executor,
  afterPosition: bigint,
  limit: number,
): Promise<ChainRow[]> {
  return db<ChainRow[]>`
    select id, chain_position as "chainPosition", prev_hash as "prevHash", hash, audit_digest_input(a) as "digestInput"
    from audit_log a
    where chain_position > ${afterPosition.toString()}::bigint
    order by chain_position
    limit ${limit}::int`;
}

export async function countSealed(db: Executor): Promise<bigint> {
  const [row] = await db<
    { count: bigint }[]
  >`select count(*)::int8 as count from audit_log where hash is not null`;
  return row?.count ?? 0n;
}

export type Checkpoint = {
  id: bigint;
  createdAt: Date;
  chainPosition: bigint;
  hash: string;
  kid: string;
  mac: string;
};

/** The checkpoint vouching for the furthest chain position (not the newest row). */
export async function selectTopCheckpoint(db: Executor): Promise<Checkpoint | undefined> {
  const [row] = await db<Checkpoint[]>`
    select id, created_at as "createdAt", chain_position as "chainPosition", hash, kid, mac
    from audit_checkpoints
    order by chain_position desc
    limit 1`;
  return row;
}

export async function insertCheckpoint(
  db: Executor,
  checkpoint: { chainPosition: bigint; hash: string; kid: string; mac: string },
): Promise<boolean> {
  const rows = await db`
    insert into audit_checkpoints (chain_position, hash, kid, mac)
    values (${checkpoint.chainPosition.toString()}::bigint, ${checkpoint.hash}::text, ${checkpoint.kid}::text, ${checkpoint.mac}::text)
    on conflict (chain_position) do nothing
    returning id`;
  return rows.length === 1;
}
