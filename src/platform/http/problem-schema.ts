import { Type } from 'typebox';
import { problemContentType } from './problems.ts';

/** RFC 9457 problem details, as `sendProblem` writes them; extensions (e.g. `errors`) may follow. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'a stable type from the error catalogue (docs/errors.md)' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

/**
 * A route's response entry for a status answered with problem+json, so OpenAPI lists it with the
 * right media type. `headers` documents response headers such as `Retry-After`. Problems are sent
 * as prepared JSON text, so this schema documents them and does not serialise them.
 */
export function problemResponse(
  description: string,
  headers: Record<string, Record<string, unknown>> = {},
): {
  description: string;
  headers?: Record<string, Record<string, unknown>>;
  content: Record<string, { schema: typeof ProblemSchema }>;
} {
  return {
    description,
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    content: { [problemContentType]: { schema: ProblemSchema } },
  };
}
