import { Type } from 'typebox';
import { FreeText } from '../platform/http/schemas.ts';
import { Uuid } from '../platform/ids.ts';

export const reasonLengthMax = 1_000;

export const ProposalStateSchema = Type.Union([
  Type.Literal('pending'),
  Type.Literal('approved'),
  Type.Literal('executed'),
  Type.Literal('rejected'),
  Type.Literal('expired'),
]);

export const ReviewSchema = Type.Object({
  reviewer: Type.String(),
  decision: Type.Union([Type.Literal('approve'), Type.Literal('reject')]),
  payloadHash: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});

export const ProposalSchema = Type.Object({
  id: Uuid(),
  action: Type.String(),
  payload: Type.Record(Type.String(), Type.Unknown()),
  payloadHash: Type.String({ description: 'sha256 of the canonical JSON payload; send it back to approve' }),
  proposer: Type.String(),
  reason: Type.String(),
  approvalsRequired: Type.Integer(),
  state: ProposalStateSchema,
  createdAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.String({ format: 'date-time' }),
  decidedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  executedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  result: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  reviews: Type.Array(ReviewSchema),
});

export const ReasonSchema = FreeText({ minLength: 1, maxLength: reasonLengthMax });
