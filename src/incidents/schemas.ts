import { Type } from 'typebox';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';
import { reminderKinds } from './reminders-data.ts';
import {
  componentLengthMax,
  componentsMax,
  impactLengthMax,
  noteLengthMax,
  reasonLengthMax,
  titleLengthMax,
} from './service.ts';
import { incidentRoles, severities, statuses, timelineKinds, timelineSources } from './states.ts';

const DateTime = Type.String({ format: 'date-time' });
const NullableDateTime = Type.Union([DateTime, Type.Null()]);

export const subjectLengthMax = 200;

export const SeveritySchema = Type.Enum(severities);
export const StatusSchema = Type.Enum(statuses);
export const RoleNameSchema = Type.Enum(incidentRoles);
export const TitleSchema = FreeText({ minLength: 1, maxLength: titleLengthMax });
export const ImpactSchema = FreeText({ maxLength: impactLengthMax });
export const ComponentsSchema = Type.Array(FreeText({ minLength: 1, maxLength: componentLengthMax }), {
  maxItems: componentsMax,
});
export const ReasonSchema = FreeText({ minLength: 1, maxLength: reasonLengthMax });

const TargetSchema = Type.Object({
  targetSeconds: Type.Integer(),
  dueAt: DateTime,
  at: NullableDateTime,
  met: Type.Union([Type.Boolean(), Type.Null()], {
    description: 'null while the incident is open and the target not yet due',
  }),
});

export const IncidentSchema = Type.Object({
  id: Uuid(),
  number: Type.Integer(),
  title: Type.String(),
  severity: SeveritySchema,
  status: StatusSchema,
  statusReason: Type.String(),
  components: Type.Array(Type.String()),
  impact: Type.String(),
  source: Type.Enum(['person', 'alertmanager'] as const),
  declaredBy: Type.String(),
  declaredAt: DateTime,
  acknowledgedAt: NullableDateTime,
  acknowledgedBy: Type.Union([Type.String(), Type.Null()]),
  resolvedAt: NullableDateTime,
  reopenedCount: Type.Integer(),
  updatedAt: DateTime,
  targets: Type.Object({ respond: TargetSchema, resolve: TargetSchema }),
});

export const RoleSchema = Type.Object({
  role: RoleNameSchema,
  subject: Type.String(),
  assumedAt: DateTime,
  renouncedAt: NullableDateTime,
});
export const RolesSchema = Type.Object({ roles: Type.Array(RoleSchema) });

export const TimelineEventSchema = Type.Object({
  id: Type.String({ description: 'the event id: page on with `after`' }),
  at: DateTime,
  kind: Type.Enum(timelineKinds),
  source: Type.Enum(timelineSources),
  actor: Type.String(),
  summary: Type.String(),
  detail: Type.Record(Type.String(), Type.Unknown()),
});

export const SnapshotHeadSchema = Type.Object({
  id: Uuid(),
  incidentRef: Type.Union([Type.String(), Type.Null()]),
  incidentId: Type.Union([Uuid(), Type.Null()]),
  takenBy: Type.String(),
  takenAt: DateTime,
});

export const ReminderSchema = Type.Object({
  id: Type.String(),
  kind: Type.String({ description: reminderKinds.join(', ') }),
  dueAt: Type.String({ format: 'date-time' }),
  overdue: Type.Boolean(),
  notifiedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  doneAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  doneReason: Type.Union([Type.String(), Type.Null()]),
  doneBy: Type.Union([Type.String(), Type.Null()]),
});

export const IncidentDetailSchema = Type.Object({
  incident: IncidentSchema,
  roles: Type.Array(RoleSchema, { description: 'every term, current (renouncedAt null) and past' }),
  timeline: Type.Object({
    count: Type.Integer(),
    recent: Type.Array(TimelineEventSchema, { description: 'the newest events, oldest first' }),
    href: Type.String({ description: 'the whole timeline, paged' }),
  }),
  snapshots: Type.Array(SnapshotHeadSchema, { description: 'the newest triage snapshots attached' }),
  reminders: Type.Array(ReminderSchema, { description: 'open update reminders; overdue ones are past due' }),
});

export const IncidentPageSchema = Type.Object({
  items: Type.Array(IncidentSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
});

export const TimelinePageSchema = Type.Object({
  items: Type.Array(TimelineEventSchema),
  nextAfter: Type.Union([Type.String(), Type.Null()], {
    description: 'pass as `after` for the next page; null on the last one',
  }),
});

export const DeclareBody = Type.Object(
  {
    title: TitleSchema,
    severity: SeveritySchema,
    components: Type.Optional(ComponentsSchema),
    impact: Type.Optional(ImpactSchema),
  },
  { additionalProperties: false },
);

export const DetailsBody = Type.Object(
  {
    title: Type.Optional(TitleSchema),
    impact: Type.Optional(ImpactSchema),
    components: Type.Optional(ComponentsSchema),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const StatusBody = Type.Object(
  { to: StatusSchema, reason: Type.Optional(ReasonSchema) },
  { additionalProperties: false },
);

export const SeverityBody = Type.Object(
  { severity: SeveritySchema, reason: Type.Optional(ReasonSchema) },
  { additionalProperties: false },
);

export const RoleBody = Type.Object(
  { subject: FreeText({ minLength: 1, maxLength: subjectLengthMax }) },
  { additionalProperties: false },
);

export const NoteBody = Type.Object(
  { text: FreeText({ minLength: 1, maxLength: noteLengthMax }) },
  { additionalProperties: false },
);

export const EmptyBody = Type.Optional(Type.Object({}, { additionalProperties: false }));
