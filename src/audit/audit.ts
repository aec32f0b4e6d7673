import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Executor, Sql } from '../platform/db/types.ts';
import {
  type AuditEntry,
  type Checkpoint,
  countSealed,
  insertAudit,
  insertCheckpoint,
  selectChainHead,
  selectChainPage,
  selectSealable,
  selectTopCheckpoint,
  tryLockSealer,
  updateSeals,
} from './data.ts';

export type { AuditEntry };

/** The hash the first row chains to. */
export const genesisHash = '0'.repeat(64);
export const sealBatchMax = 1_000;
export const verifyPageMax = 1_000;

/** Records a state change or operator action inside the caller's transaction. */
export async function appendAudit(db: Executor, entry: AuditEntry): Promise<void> {
  await insertAudit(db, entry);
}

export function chainHash(prevHash: string, digestInput: string): string {
  return createHash('sha256').update(prevHash).update('|').update(digestInput).digest('hex');
}

/**
 * Why rows are sealed after commit instead of chained at insert: chaining at insert needs the
 * previous row's hash, hence one global lock held until commit by every transaction that writes
 * an audit row, i.e. every money move. Measured with pgbench running the transfer's SQL
 * (16 clients, 2 × AMD EPYC, PostgreSQL 18): about 950 transfers/s with unsealed inserts against
 * about 450/s with an advisory lock plus a read of the head before the insert. The price of
 * sealing later is a window (up to the seal job's minute) in which a row is not yet chained.
 *
 * Chains every finished unsealed row onto the head, in batches of at most `sealBatchMax`, until
 * none is left. A second sealer running at the same time does nothing (advisory lock).
 * Returns how many rows were sealed.
 */
export async function sealAuditLog(sql: Sql): Promise<number> {
  let sealed = 0;
  while (true) {
    const batch = await withTransaction(sql, async (tx) => {
      if (!(await tryLockSealer(tx))) return 0;
      const rows = await selectSealable(tx, sealBatchMax);
      if (rows.length === 0) return 0;
      const head = await selectChainHead(tx);
      let position = head?.chainPosition ?? 0n;
      let prevHash = head?.hash ?? genesisHash;
      const seals = rows.map((row) => {
        position += 1n;
        const hash = chainHash(prevHash, row.digestInput);
        const seal = { id: row.id, chainPosition: position, prevHash, hash };
        prevHash = hash;
        return seal;
      });
      await updateSeals(tx, seals);
      return rows.length;
    });
    sealed += batch;
    if (batch < sealBatchMax) return sealed;
  }
}

/** The keys checkpoints are signed with: the keyring (src/platform/auth/keyring.ts). */
export type CheckpointKeys = {
  signingKey(): { kid: string; secret: Uint8Array };
  verificationKey(kid: string): Uint8Array | undefined;
};

export function checkpointMac(secret: Uint8Array, chainPosition: bigint, hash: string): string {
  return createHmac('sha256', secret)
    .update(`settledesk-audit-checkpoint|v1|${chainPosition}|${hash}`)
    .digest('hex');
}

/** Raised by the checkpoint job when the chain is shorter than a checkpoint says it was. */
export class ChainBehindCheckpointError extends Error {}

/**
 * Writes a signed checkpoint of the sealed chain head, unless one already vouches for it. Refuses
 * (throws, so the job counts a failure and WorkerLoopStale fires) when the head is behind the
 * highest checkpoint: rows were removed from the end, and vouching for the shorter chain would
 * hide it. Returns the position checkpointed, or undefined when nothing new was sealed.
 */
export async function writeAuditCheckpoint(db: Executor, keys: CheckpointKeys): Promise<bigint | undefined> {
  const head = await selectChainHead(db);
  const top = await selectTopCheckpoint(db);
  const headPosition = head?.chainPosition ?? 0n;
  if (top !== undefined && headPosition < top.chainPosition) {
    throw new ChainBehindCheckpointError(
      `audit chain head ${headPosition} is behind the checkpoint at ${top.chainPosition}: positions ${headPosition + 1n}–${top.chainPosition} are missing; run \`settledesk audit verify\``,
    );
  }
  if (head === undefined || headPosition === top?.chainPosition) return undefined;
  const { kid, secret } = keys.signingKey();
  await insertCheckpoint(db, {
    chainPosition: head.chainPosition,
    hash: head.hash,
    kid,
    mac: checkpointMac(secret, head.chainPosition, head.hash),
  });
  return head.chainPosition;
}

function checkpointProblem(checkpoint: Checkpoint, keys: CheckpointKeys): string | undefined {
  const secret = keys.verificationKey(checkpoint.kid);
  if (secret === undefined) {
    return `checkpoint ${checkpoint.id} is signed with key ${checkpoint.kid}, which is not a current or verify-only signing key`;
  }
  const expected = Buffer.from(checkpointMac(secret, checkpoint.chainPosition, checkpoint.hash), 'hex');
  const actual = Buffer.from(checkpoint.mac, 'hex');
  return expected.length === actual.length && timingSafeEqual(expected, actual)
    ? undefined
    : `checkpoint ${checkpoint.id} has an invalid signature (forged or altered)`;
}

export type VerifyResult =
  | { ok: true; rowsChecked: bigint; checkpoint: bigint | null }
  | { ok: false; rowsChecked: bigint; badRowId: bigint; chainPosition: bigint; problem: string }
  | { ok: false; rowsChecked: bigint; missing: { from: bigint; to: bigint }; problem: string }
  | { ok: false; rowsChecked: bigint; checkpointId: bigint; problem: string };

/**
 * Walks the chain from the first row and recomputes every hash from the row's content. The first
 * row whose content, link or hash does not match is reported: everything from it on is suspect.
 * Then the chain is held against the signed checkpoint that vouches for the furthest position:
 * its signature must verify, the row at its position must carry its hash, and a chain ending
 * before it is reported with the missing range of positions (rows removed from the end).
 */
export async function verifyAuditLog(
  db: Executor,
  keys: CheckpointKeys,
  onProgress: (checked: bigint, total: bigint) => void = () => {},
): Promise<VerifyResult> {
  const total = await countSealed(db);
  const checkpoint = await selectTopCheckpoint(db);
  if (checkpoint !== undefined) {
    const problem = checkpointProblem(checkpoint, keys);
    if (problem !== undefined) return { ok: false, rowsChecked: 0n, checkpointId: checkpoint.id, problem };
  }
  let prevHash = genesisHash;
  let position = 0n;
  let checked = 0n;
  while (true) {
    const rows = await selectChainPage(db, position, verifyPageMax);
    for (const row of rows) {
      const expectedPosition = position + 1n;
      const problem =
        row.chainPosition !== expectedPosition
          ? `chain position ${row.chainPosition} where ${expectedPosition} was expected (a row was removed)`
          : row.prevHash !== prevHash
            ? 'its link does not match the previous row’s hash'
            : row.hash !== chainHash(prevHash, row.digestInput)
              ? 'its content does not match its hash (the row was altered)'
              : expectedPosition === checkpoint?.chainPosition && row.hash !== checkpoint.hash
                ? `its hash differs from the one signed in checkpoint ${checkpoint.id} (the chain was rewritten)`
                : undefined;
      if (problem !== undefined) {
        return {
          ok: false,
          rowsChecked: checked,
          badRowId: row.id,
          chainPosition: row.chainPosition ?? 0n,
          problem,
        };
      }
      prevHash = row.hash ?? genesisHash;
      position = expectedPosition;
      checked += 1n;
    }
    onProgress(checked, total);
    if (rows.length < verifyPageMax) break;
  }
  if (checkpoint !== undefined && position < checkpoint.chainPosition) {
    return {
      ok: false,
      rowsChecked: checked,
      missing: { from: position + 1n, to: checkpoint.chainPosition },
      problem: `the chain ends at position ${position} but checkpoint ${checkpoint.id} (${checkpoint.createdAt.toISOString()}) vouches for position ${checkpoint.chainPosition}: rows at positions ${position + 1n}–${checkpoint.chainPosition} were removed`,
    };
  }
  return { ok: true, rowsChecked: checked, checkpoint: checkpoint?.chainPosition ?? null };
}
