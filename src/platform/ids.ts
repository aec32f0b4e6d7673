import { Type } from 'typebox';

/**
 * The one definition of an id. Every id this service stores is a PostgreSQL `uuid`, and it is
 * accepted only in the canonical form the API returns: 8-4-4-4-12 lowercase hex. JSON Schema's
 * `uuid` format also accepts `urn:uuid:…` (in any case), which PostgreSQL refuses, so it is not
 * used alone. Uppercase is refused too although PostgreSQL would take it: ids are compared as
 * strings in places (same account on both legs, duplicate legs), and one spelling per id keeps
 * those comparisons exact.
 */
export const uuidPatternSource = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
export const uuidPattern = new RegExp(uuidPatternSource);

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && uuidPattern.test(value);
}

/** An id in a route schema (path, query, body or response). */
export const Uuid = (options: { description?: string } = {}) =>
  Type.String({ format: 'uuid', pattern: uuidPatternSource, ...options });
