import { assert } from '../platform/assert.ts';
import type { AlertmanagerConfig } from '../platform/config.ts';
import { withTransaction } from '../platform/db/transaction.ts';
import type { Sql, Tx } from '../platform/db/types.ts';
import {
  type AlertGroupKey,
  type AlertRecordRow,
  insertAlertGroup,
  insertAlertRecord,
  selectAlertGroupForUpdate,
  selectAlertRecords,
  selectLatestStarts,
  updateAlertGroup,
} from './alertmanager-data.ts';
import {
  type Actor,
  appendTimeline,
  componentLengthMax,
  componentsMax,
  declareIncidentIn,
  impactLengthMax,
  lockIncident,
  titleLengthMax,
} from './service.ts';
import { type Severity, severities } from './states.ts';

/**
 * Alertmanager's webhook (payload version 4) into incidents. A notification group is keyed by
 * (receiver, groupKey), an alert by (fingerprint, startsAt). Alertmanager retries a 5xx and never a
 * 4xx, and repeats notifications, sends them twice, out of order, or resolved for alerts never seen
 * firing: every alert state is therefore recorded once, and what was recorded already changes
 * nothing. Decisions (docs/incidents.md, "Alertmanager intake"):
 * - a new firing alert opens an incident when its group has none open, else it is added to it; a
 *   group whose incident a person resolved gets a new incident when a new alert fires;
 * - a resolved alert adds `alert_resolved` to the incident it fired in, once, and never resolves it;
 * - a resolved alert never seen firing opens nothing and is recorded, so that a firing of the same
 *   (fingerprint, startsAt) arriving later is known to be stale, as is a firing older than the
 *   latest episode recorded for its fingerprint;
 * - `truncatedAlerts` is recorded on the group and, when it changes, on its incident.
 */

export type AlertStatus = 'firing' | 'resolved';

export type AlertmanagerAlert = {
  status: AlertStatus;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
  fingerprint: string;
};

export type AlertmanagerNotification = {
  version: string;
  groupKey: string;
  truncatedAlerts?: number;
  status: AlertStatus;
  receiver: string;
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  externalURL: string;
  alerts: AlertmanagerAlert[];
};

/** What one delivery changed; repeats answer with zeros and `unchanged` counting their alerts. */
export type IntakeOutcome = {
  /** The group's incident after this delivery, if it has one. */
  incidentId: string | null;
  incidentOpened: boolean;
  firingAdded: number;
  resolvedAdded: number;
  /** Resolved alerts never seen firing: recorded, no incident touched. */
  resolvedUnknown: number;
  /** Repeats and stale notices: nothing changed for them. */
  unchanged: number;
  truncatedRecorded: boolean;
};

/** The severity label read for the mapping, and the label naming an affected component. */
export const severityLabel = 'severity';
export const componentLabel = 'component';
/** The severity of an alert whose label value the map does not list and which has no `*` entry. */
export const severityUnmapped: Severity = 'P3';
/** Alerts in one notification; Alertmanager's `max_alerts` must not exceed it (ops/alertmanager). */
export const alertsPerNotificationMax = 500;

export function severityOf(map: AlertmanagerConfig['severityMap'], alert: AlertmanagerAlert): Severity {
  const value = alert.labels[severityLabel];
  return (value !== undefined ? map[value] : undefined) ?? map['*'] ?? severityUnmapped;
}

const alertname = (alert: AlertmanagerAlert) => (alert.labels.alertname ?? '').slice(0, 200);
const keyOf = (fingerprint: string, startsAt: Date, status: AlertStatus) =>
  `${fingerprint}|${startsAt.toISOString()}|${status}`;

/** Records a notification in one transaction under its group's row lock. */
export async function receiveNotification(
  sql: Sql,
  config: AlertmanagerConfig,
  notification: AlertmanagerNotification,
  actor: Actor,
): Promise<IntakeOutcome> {
  return withTransaction(sql, (tx) => receiveIn(tx, config, notification, actor));
}

async function receiveIn(
  tx: Tx,
  config: AlertmanagerConfig,
  notification: AlertmanagerNotification,
  actor: Actor,
): Promise<IntakeOutcome> {
  const group: AlertGroupKey = { receiver: notification.receiver, groupKey: notification.groupKey };
  await insertAlertGroup(tx, group);
  const groupRow = await selectAlertGroupForUpdate(tx, group);
  const alerts = notification.alerts.map((alert) => ({ alert, startsAt: new Date(alert.startsAt) }));
  const { records, latest } = await readRecorded(tx, group, alerts);
  const outcome: IntakeOutcome = {
    incidentId: groupRow.incidentId,
    incidentOpened: false,
    firingAdded: 0,
    resolvedAdded: 0,
    resolvedUnknown: 0,
    unchanged: 0,
    truncatedRecorded: false,
  };
  const firing: typeof alerts = [];
  for (const entry of alerts) {
    const { alert, startsAt } = entry;
    const firingRecord = records.get(keyOf(alert.fingerprint, startsAt, 'firing'));
    const resolvedRecord = records.get(keyOf(alert.fingerprint, startsAt, 'resolved'));
    if (alert.status === 'firing') {
      const stale = (latest.get(alert.fingerprint) ?? Number.NEGATIVE_INFINITY) > startsAt.getTime();
      const seen = firingRecord || resolvedRecord || firing.some((other) => sameAlert(other, entry));
      if (seen || stale) outcome.unchanged += 1;
      else firing.push(entry);
      continue;
    }
    if (resolvedRecord) {
      outcome.unchanged += 1;
      continue;
    }
    const incidentId = firingRecord?.incidentId ?? null;
    await addResolved(tx, group, outcome, { ...entry, incidentId }, actor);
    records.set(keyOf(alert.fingerprint, startsAt, 'resolved'), {
      fingerprint: alert.fingerprint,
      startsAt,
      status: 'resolved',
      incidentId,
    });
  }
  if (firing.length > 0) await addFiring(tx, config, group, outcome, firing, actor);
  const truncated = notification.truncatedAlerts ?? 0;
  if (truncated !== groupRow.truncatedAlerts && truncated > 0 && outcome.incidentId !== null) {
    await recordTruncation(tx, group, outcome.incidentId, truncated, actor);
    outcome.truncatedRecorded = true;
  }
  if (outcome.incidentId !== groupRow.incidentId || truncated !== groupRow.truncatedAlerts) {
    await updateAlertGroup(tx, group, { incidentId: outcome.incidentId, truncatedAlerts: truncated });
  }
  return outcome;
}

/** What the group recorded of these alerts, by key, and the latest episode of each fingerprint. */
async function readRecorded(
  tx: Tx,
  group: AlertGroupKey,
  alerts: readonly { alert: AlertmanagerAlert; startsAt: Date }[],
): Promise<{ records: Map<string, AlertRecordRow>; latest: Map<string, number> }> {
  const keys = alerts.map(({ alert, startsAt }) => ({ fingerprint: alert.fingerprint, startsAt }));
  const rows = await selectAlertRecords(tx, group, keys);
  const fingerprints = [...new Set(keys.map((key) => key.fingerprint))];
  const starts = await selectLatestStarts(tx, group, fingerprints);
  return {
    records: new Map(rows.map((row) => [keyOf(row.fingerprint, row.startsAt, row.status), row])),
    latest: new Map(starts.map((row) => [row.fingerprint, row.startsAt.getTime()])),
  };
}

/**
 * A resolved alert not recorded yet: kept, and added to the incident it fired in (resolved or
 * not: the timeline is what happened), or counted as unknown when it never fired here.
 */
async function addResolved(
  tx: Tx,
  group: AlertGroupKey,
  outcome: IntakeOutcome,
  entry: { alert: AlertmanagerAlert; startsAt: Date; incidentId: string | null },
  actor: Actor,
): Promise<void> {
  const { alert, startsAt, incidentId } = entry;
  const record = { fingerprint: alert.fingerprint, startsAt, status: 'resolved' as const, incidentId };
  const inserted = await insertAlertRecord(tx, group, { ...record, alertname: alertname(alert) });
  assert(inserted, 'a resolved alert read as new under the group lock was recorded already');
  if (incidentId === null) {
    outcome.resolvedUnknown += 1;
    return;
  }
  await lockIncident(tx, incidentId);
  await appendTimeline(tx, incidentId, resolvedEvent(group, alert), actor);
  outcome.resolvedAdded += 1;
}

async function recordTruncation(
  tx: Tx,
  group: AlertGroupKey,
  incidentId: string,
  truncated: number,
  actor: Actor,
): Promise<void> {
  await lockIncident(tx, incidentId);
  await appendTimeline(
    tx,
    incidentId,
    {
      kind: 'alerts_truncated',
      source: 'alertmanager',
      summary: `Alertmanager left ${truncated} alerts of the group out of its notification`,
      detail: { receiver: group.receiver, groupKey: group.groupKey, truncatedAlerts: truncated },
    },
    actor,
  );
}

function sameAlert(
  a: { alert: AlertmanagerAlert; startsAt: Date },
  b: { alert: AlertmanagerAlert; startsAt: Date },
) {
  return a.alert.fingerprint === b.alert.fingerprint && a.startsAt.getTime() === b.startsAt.getTime();
}

/**
 * New firing alerts go to the group's incident while it is open; otherwise the most severe of them
 * opens a new one, which becomes the group's incident.
 */
async function addFiring(
  tx: Tx,
  config: AlertmanagerConfig,
  group: AlertGroupKey,
  outcome: IntakeOutcome,
  firing: readonly { alert: AlertmanagerAlert; startsAt: Date }[],
  actor: Actor,
): Promise<void> {
  const current = outcome.incidentId ? await lockIncident(tx, outcome.incidentId) : undefined;
  let incidentId = current && current.status !== 'resolved' ? current.id : undefined;
  if (incidentId === undefined) {
    const severity = (alert: AlertmanagerAlert) => severities.indexOf(severityOf(config.severityMap, alert));
    const first = [...firing].sort((a, b) => severity(a.alert) - severity(b.alert))[0];
    if (!first) return;
    const opened = await declareIncidentIn(
      tx,
      declaration(config, first.alert, firing),
      actor,
      'alertmanager',
    );
    incidentId = opened.id;
    outcome.incidentOpened = true;
  }
  outcome.incidentId = incidentId;
  for (const { alert, startsAt } of firing) {
    const record = { fingerprint: alert.fingerprint, startsAt, status: 'firing' as const, incidentId };
    const inserted = await insertAlertRecord(tx, group, { ...record, alertname: alertname(alert) });
    assert(inserted, 'a firing alert read as new under the group lock was recorded already');
    await appendTimeline(
      tx,
      incidentId,
      firingEvent(group, alert, severityOf(config.severityMap, alert)),
      actor,
    );
    outcome.firingAdded += 1;
  }
}

function declaration(
  config: AlertmanagerConfig,
  alert: AlertmanagerAlert,
  firing: readonly { alert: AlertmanagerAlert }[],
) {
  const components = [
    ...new Set(
      firing
        .map((entry) => entry.alert.labels[componentLabel])
        .filter((value): value is string => value !== undefined && value !== '')
        .map((value) => value.slice(0, componentLengthMax)),
    ),
  ].slice(0, componentsMax);
  const title = alert.annotations.summary || alertname(alert) || 'an alert from Alertmanager';
  return {
    title: title.slice(0, titleLengthMax),
    severity: severityOf(config.severityMap, alert),
    components,
    impact: (alert.annotations.description ?? '').slice(0, impactLengthMax),
  };
}

function firingEvent(group: AlertGroupKey, alert: AlertmanagerAlert, severity: Severity) {
  const summary = alert.annotations.summary;
  return {
    kind: 'alert_firing' as const,
    source: 'alertmanager' as const,
    summary: `${alertname(alert) || alert.fingerprint} firing${summary ? `: ${summary}` : ''}`,
    detail: {
      receiver: group.receiver,
      groupKey: group.groupKey,
      fingerprint: alert.fingerprint,
      startsAt: alert.startsAt,
      severity,
      labels: alert.labels,
      annotations: alert.annotations,
      generatorURL: alert.generatorURL ?? null,
    },
  };
}

function resolvedEvent(group: AlertGroupKey, alert: AlertmanagerAlert) {
  return {
    kind: 'alert_resolved' as const,
    source: 'alertmanager' as const,
    summary: `${alertname(alert) || alert.fingerprint} resolved`,
    detail: {
      receiver: group.receiver,
      groupKey: group.groupKey,
      fingerprint: alert.fingerprint,
      startsAt: alert.startsAt,
      endsAt: alert.endsAt ?? null,
    },
  };
}
