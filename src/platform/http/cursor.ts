import { DomainError } from '../errors.ts';
import { isUuid } from '../ids.ts';

/**
 * Keyset pagination cursors for lists ordered by (created_at, id): opaque base64url text of
 * `<ISO time>|<uuid>`. Decoding is the one place a cursor is checked, and a cursor is accepted only
 * in the exact form `encodeCursor` writes, with a time PostgreSQL can store and compare: a crafted
 * one (a 6-digit year, year 0, an id of 36 dashes) is a 400 `request/invalid-cursor`, never a
 * database error.
 */

export type CursorPosition = { createdAt: Date; id: string };

/** Cursors are short; anything longer was not written by `encodeCursor`. */
export const cursorLengthMax = 200;
const isoTimePattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Rows are created now; these bounds only keep a crafted time inside what timestamptz holds. */
const cursorTimeMin = Date.UTC(1970, 0, 1);
const cursorTimeMax = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export function encodeCursor(row: CursorPosition): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

function invalid(field: string): DomainError {
  return new DomainError('request/invalid-cursor', `${field} is not a cursor this API returned`, {
    errors: [{ field, message: 'is not a cursor from this API' }],
  });
}

export function decodeCursor(cursor: string, field = 'query.cursor'): CursorPosition {
  if (cursor.length > cursorLengthMax || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid(field);
  const parts = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const [time = '', id = ''] = parts;
  if (parts.length !== 2 || !isoTimePattern.test(time) || !isUuid(id)) throw invalid(field);
  const createdAt = new Date(time);
  const ms = createdAt.getTime();
  // The round trip refuses dates that do not exist (2024-02-30) but that Date would roll over.
  if (Number.isNaN(ms) || ms < cursorTimeMin || ms > cursorTimeMax || createdAt.toISOString() !== time) {
    throw invalid(field);
  }
  return { createdAt, id };
}
