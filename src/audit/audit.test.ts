import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { runCli } from '../../test/support/process.ts';
import { testEnv, testKeyringKey } from '../../test/support/service.ts';
import { ensureCurrentKey, Keyring } from '../platform/auth/keyring.ts';
import {
  appendAudit,
  ChainBehindCheckpointError,
  checkpointMac,
  sealAuditLog,
  verifyAuditLog,
  writeAuditCheckpoint,
} from './audit.ts';
import { auditTasks, checkpointTask } from './tasks.ts';

let db: TestDatabase;
/** The key a `settledesk` process started with testEnv opens, so CLI and test sign alike. */
const keyring = new Keyring(Buffer.from(testKeyringKey, 'base64'));

beforeAll(async () => {
  db = await createTestDatabase();
  await ensureCurrentKey(db.sql, keyring);
});

afterAll(async () => {
  await db.drop();
});

async function append(count: number): Promise<void> {
  for (let index = 0; index < count; index += 1) {
    await appendAudit(db.sql, {
      actor: 'ada',
      action: 'test.step',
      subjectType: 'thing',
      subjectId: String(index),
      before: { n: index },
      after: { n: index + 1, note: 'ü ✓' },
      requestId: `r-${index}`,
    });
  }
}

describe('the audit log', () => {
  it('chains every row and verifies intact', async () => {
    await append(25);
    expect(await sealAuditLog(db.sql)).toBe(25);
    const result = await verifyAuditLog(db.sql, keyring);
    expect(result).toEqual({ ok: true, rowsChecked: 25n, checkpoint: null });
  });

  it('never chains a row whose transaction is still open, and chains it once it commits', async () => {
    const open = db.sql.reserve();
    const connection = await open;
    await connection`begin`;
    await appendAudit(connection, {
      actor: 'slow',
      action: 'test.slow',
      subjectType: 'thing',
      subjectId: 'x',
    });
    await append(2);
    await sealAuditLog(db.sql);
    const [pending] = await db.sql`select hash from audit_log where actor = 'slow'`;
    expect(pending).toBeUndefined();
    await connection`commit`;
    connection.release();
    await sealAuditLog(db.sql);
    const [sealed] = await db.sql<{ hash: string | null }[]>`select hash from audit_log where actor = 'slow'`;
    expect(sealed?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect((await verifyAuditLog(db.sql, keyring)).ok).toBe(true);
  });

  it('refuses UPDATE, DELETE and TRUNCATE', async () => {
    await expect(db.sql`update audit_log set actor = 'mallory' where id = 1`).rejects.toThrow(/append-only/);
    await expect(db.sql`update audit_log set hash = repeat('0', 64) where id = 1`).rejects.toThrow(
      /append-only/,
    );
    await expect(db.sql`delete from audit_log where id = 2`).rejects.toThrow(/append-only/);
    await expect(db.sql`truncate audit_log`).rejects.toThrow(/append-only/);
  });

  it('names the first tampered row when triggers were bypassed, and `settledesk audit verify` exits non-zero', async () => {
    const env = await testEnv(db);
    const clean = await runCli(['audit', 'verify'], env);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/intact: \d+ rows verified/);

    await db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update audit_log set after = '{"n": 999}' where id = 7`;
    });
    const result = await verifyAuditLog(db.sql, keyring);
    expect(result).toMatchObject({ ok: false, badRowId: 7n });
    const tampered = await runCli(['audit', 'verify'], env);
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain('row id 7');
  });

  it('detects a deleted row', async () => {
    const other = await createTestDatabase();
    try {
      const sql = other.sql;
      for (let index = 0; index < 5; index += 1) {
        await appendAudit(sql, { actor: 'a', action: 'x.y', subjectType: 't', subjectId: String(index) });
      }
      await sealAuditLog(sql);
      await sql.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`delete from audit_log where id = 3`;
      });
      expect(await verifyAuditLog(sql, keyring)).toMatchObject({ ok: false, badRowId: 4n });
    } finally {
      await other.drop();
    }
  });
});

/**
 * Seals until no row is left unsealed. The sealer skips rows while any older transaction of the
 * cluster is open (xmin is cluster-wide), and the test PostgreSQL is shared with other suites.
 */
async function sealEverything(sql: TestDatabase['sql']): Promise<void> {
  const deadline = Date.now() + sealWaitMsMax;
  while (true) {
    await sealAuditLog(sql);
    const [row] = await sql<
      { left: number }[]
    >`select count(*)::int as left from audit_log where hash is null`;
    if (row?.left === 0) return;
    if (Date.now() > deadline) throw new Error(`${row?.left} audit rows still unsealed`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
const sealWaitMsMax = 60_000;

describe('signed checkpoints of the chain head', () => {
  async function freshLog(rows: number): Promise<TestDatabase> {
    const other = await createTestDatabase();
    await ensureCurrentKey(other.sql, keyring);
    for (let index = 0; index < rows; index += 1) {
      await appendAudit(other.sql, { actor: 'a', action: 'x.y', subjectType: 't', subjectId: String(index) });
    }
    await sealEverything(other.sql);
    return other;
  }

  async function removeLast(sql: TestDatabase['sql'], count: number): Promise<void> {
    await sql`alter table audit_log disable trigger user`;
    await sql`delete from audit_log where chain_position > (select max(chain_position) - ${count}::int from audit_log)`;
    await sql`alter table audit_log enable trigger user`;
  }

  it('the audit_checkpoint job signs the sealed head once, and again only when it moved', async () => {
    const other = await freshLog(4);
    try {
      const run = auditTasks({ sql: other.sql, keyring })[checkpointTask];
      await run?.({}, {} as never);
      await run?.({}, {} as never);
      await appendAudit(other.sql, { actor: 'a', action: 'x.y', subjectType: 't', subjectId: 'late' });
      await sealEverything(other.sql);
      await run?.({}, {} as never);
      const rows = await other.sql<{ chainPosition: bigint; hash: string; kid: string; mac: string }[]>`
        select chain_position as "chainPosition", hash, kid, mac from audit_checkpoints order by id`;
      expect(rows.map((row) => row.chainPosition)).toEqual([4n, 5n]);
      const [head] = await other.sql<{ hash: string }[]>`select hash from audit_log where chain_position = 5`;
      const { kid, secret } = keyring.signingKey();
      expect(rows[1]).toMatchObject({
        hash: head?.hash,
        kid,
        mac: checkpointMac(secret, 5n, head?.hash ?? ''),
      });
      expect(await verifyAuditLog(other.sql, keyring)).toEqual({ ok: true, rowsChecked: 5n, checkpoint: 5n });
      await expect(other.sql`delete from audit_checkpoints`).rejects.toThrow(/append-only/);
      await expect(other.sql`update audit_checkpoints set hash = hash`).rejects.toThrow(/append-only/);
    } finally {
      await other.drop();
    }
  });

  it('truncating the last rows makes `settledesk audit verify` exit 1 naming the missing range', async () => {
    const other = await freshLog(10);
    try {
      expect(await writeAuditCheckpoint(other.sql, keyring)).toBe(10n);
      const env = await testEnv(other);
      const intact = await runCli(['audit', 'verify'], env);
      expect(intact.code, intact.stderr).toBe(0);
      expect(intact.stdout).toContain('signed checkpoint at position 10 holds');

      await removeLast(other.sql, 3);
      // A walk of the chain alone finds nothing wrong with what is left.
      const truncated = await verifyAuditLog(other.sql, keyring);
      expect(truncated).toMatchObject({ ok: false, rowsChecked: 7n, missing: { from: 8n, to: 10n } });
      const cli = await runCli(['audit', 'verify'], env);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain('chain positions 8–10 are missing');
      // The job refuses to vouch for the shorter chain, so it fails (and WorkerLoopStale fires).
      await expect(writeAuditCheckpoint(other.sql, keyring)).rejects.toThrow(ChainBehindCheckpointError);
    } finally {
      await other.drop();
    }
  });

  it('catches rows removed from the end and replaced by re-sealed ones', async () => {
    const other = await freshLog(6);
    try {
      await writeAuditCheckpoint(other.sql, keyring);
      await removeLast(other.sql, 2);
      for (const id of ['forged-1', 'forged-2']) {
        await appendAudit(other.sql, { actor: 'a', action: 'x.y', subjectType: 't', subjectId: id });
      }
      await sealEverything(other.sql);
      expect(await verifyAuditLog(other.sql, keyring)).toMatchObject({
        ok: false,
        chainPosition: 6n,
        problem: expect.stringContaining('the chain was rewritten'),
      });
    } finally {
      await other.drop();
    }
  });

  it('refuses a checkpoint whose signature does not verify', async () => {
    const other = await freshLog(3);
    try {
      await writeAuditCheckpoint(other.sql, keyring);
      await other.sql`alter table audit_checkpoints disable trigger user`;
      await other.sql`update audit_checkpoints set mac = repeat('0', 64)`;
      await other.sql`alter table audit_checkpoints enable trigger user`;
      expect(await verifyAuditLog(other.sql, keyring)).toMatchObject({
        ok: false,
        problem: expect.stringContaining('invalid signature'),
      });
    } finally {
      await other.drop();
    }
  });
});
