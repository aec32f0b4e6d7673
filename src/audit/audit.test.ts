import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.ts';
import { runCli } from '../../test/support/process.ts';
import { testEnv } from '../../test/support/service.ts';
import { appendAudit, sealAuditLog, verifyAuditLog } from './audit.ts';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
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
    const result = await verifyAuditLog(db.sql);
    expect(result).toEqual({ ok: true, rowsChecked: 25n });
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
    expect((await verifyAuditLog(db.sql)).ok).toBe(true);
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
    const result = await verifyAuditLog(db.sql);
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
      expect(await verifyAuditLog(sql)).toMatchObject({ ok: false, badRowId: 4n });
    } finally {
      await other.drop();
    }
  });
});
