import { assert } from '../platform/assert.ts';
import type { Executor } from '../platform/db/types.ts';

/** SQL of the Alertmanager intake (migration 027); one function per statement. */

export type AlertGroupKey = { receiver: string; groupKey: string };

export type AlertGroupRow = AlertGroupKey & { incidentId: string | null; truncatedAlerts: number };

export type AlertStatus = 'firing' | 'resolved';

export type AlertRecordRow = {
  fingerprint: string;
  startsAt: Date;
  status: AlertStatus;
  incidentId: string | null;
};

/** Creates the group's row the first time it is seen; a no-op afterwards. */
export async function insertAlertGroup(db: Executor, group: AlertGroupKey): Promise<void> {
  await db`
    insert into alertmanager_groups (receiver, group_key, created_at, updated_at)
    values (${group.receiver}::text, ${group.groupKey}::text, now(), now())
    on conflict (receiver, group_key) do nothing`;
}

/** The lock every delivery of the group takes before it reads or writes anything of it. */
export async function selectAlertGroupForUpdate(db: Executor, group: AlertGroupKey): Promise<AlertGroupRow> {
  const [row] = await db<AlertGroupRow[]>`
    select receiver, group_key as "groupKey", incident_id as "incidentId", truncated_alerts as "truncatedAlerts"
    from alertmanager_groups
    where receiver = ${group.receiver}::text and group_key = ${group.groupKey}::text
    for update`;
  assert(row, 'the alert group row inserted in this transaction is gone');
  return row;
}

export async function updateAlertGroup(
  db: Executor,
  group: AlertGroupKey,
  change: { incidentId: string | null; truncatedAlerts: number },
): Promise<void> {
  await db`
    update alertmanager_groups g set incident_id = ${change.incidentId}::uuid,
      truncated_alerts = ${change.truncatedAlerts}::int, updated_at = greatest(now(), g.updated_at)
    where receiver = ${group.receiver}::text and group_key = ${group.groupKey}::text`;
}

/** The recorded states of these (fingerprint, starts_at) pairs in the group: at most two per pair. */
export async function selectAlertRecords(
  db: Executor,
  group: AlertGroupKey,
  keys: readonly { fingerprint: string; startsAt: Date }[],
): Promise<AlertRecordRow[]> {
  return db<AlertRecordRow[]>`
    select a.fingerprint, a.starts_at as "startsAt", a.status, a.incident_id as "incidentId"
    from alertmanager_alerts a
    join unnest(${keys.map((key) => key.fingerprint)}::text[], ${keys.map((key) => key.startsAt.toISOString())}::timestamptz[])
      as k (fingerprint, starts_at) on a.fingerprint = k.fingerprint and a.starts_at = k.starts_at
    where a.receiver = ${group.receiver}::text and a.group_key = ${group.groupKey}::text`;
}

/** The latest episode (starts_at) recorded for each of these fingerprints in the group. */
export async function selectLatestStarts(
  db: Executor,
  group: AlertGroupKey,
  fingerprints: readonly string[],
): Promise<{ fingerprint: string; startsAt: Date }[]> {
  return db<{ fingerprint: string; startsAt: Date }[]>`
    select fingerprint, max(starts_at) as "startsAt" from alertmanager_alerts
    where receiver = ${group.receiver}::text and group_key = ${group.groupKey}::text
      and fingerprint = any(${fingerprints as string[]}::text[])
    group by fingerprint`;
}

/** Records one alert state; false when it was recorded already (the delivery is a repeat). */
export async function insertAlertRecord(
  db: Executor,
  group: AlertGroupKey,
  record: AlertRecordRow & { alertname: string },
): Promise<boolean> {
  const rows = await db`
    insert into alertmanager_alerts (receiver, group_key, fingerprint, starts_at, status, alertname,
      incident_id, received_at)
    values (${group.receiver}::text, ${group.groupKey}::text, ${record.fingerprint}::text,
      ${record.startsAt}::timestamptz, ${record.status}::text, ${record.alertname}::text,
      ${record.incidentId}::uuid, now())
    on conflict do nothing
    returning fingerprint`;
  return rows.length === 1;
}
