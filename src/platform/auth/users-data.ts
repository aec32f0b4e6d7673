import type { Executor } from '../db/types.ts';

export type UserRow = {
  name: string;
  suspendedAt: Date | null;
  suspendedBy: string | null;
  suspendedReason: string | null;
};

export async function selectSuspendedUserNames(db: Executor): Promise<string[]> {
  const rows = await db<{ name: string }[]>`select name from users where suspended_at is not null`;
  return rows.map((row) => row.name);
}

export async function selectUser(db: Executor, name: string): Promise<UserRow | undefined> {
  const [row] = await db<UserRow[]>`
    select name, suspended_at as "suspendedAt", suspended_by as "suspendedBy", suspended_reason as "suspendedReason"
    from users where name = ${name}::text`;
  return row;
}

export async function upsertSuspension(
  db: Executor,
  name: string,
  by: string,
  reason: string,
): Promise<void> {
  await db`
    insert into users (name, suspended_at, suspended_by, suspended_reason)
    values (${name}::text, now(), ${by}::text, ${reason}::text)
    on conflict (name) do update
    set suspended_at = coalesce(users.suspended_at, excluded.suspended_at),
        suspended_by = coalesce(users.suspended_by, excluded.suspended_by),
        suspended_reason = coalesce(users.suspended_reason, excluded.suspended_reason)`;
}

export async function updateReinstate(db: Executor, name: string): Promise<number> {
  const result = await db`
    update users set suspended_at = null, suspended_by = null, suspended_reason = null
    where name = ${name}::text and suspended_at is not null`;
  return result.count;
}
