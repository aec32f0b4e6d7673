import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../errors.ts';
import { decodeCursor, encodeCursor } from './cursor.ts';

const id = '3f2c7a3e-8d0b-4f5e-9a51-2c6b8e0d4a17';
const crafted = (text: string) => Buffer.from(text).toString('base64url');

describe('pagination cursors', () => {
  it('decode to the position they were encoded from', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('1970-01-01T00:00:00.000Z'),
          max: new Date('9999-12-31T23:59:59.999Z'),
          noInvalidDate: true,
        }),
        fc.uuid(),
        (createdAt, uuid) => {
          expect(decodeCursor(encodeCursor({ createdAt, id: uuid }))).toEqual({ createdAt, id: uuid });
        },
      ),
      { seed: 14, numRuns: 500 },
    );
  });

  it.each([
    ['a year PostgreSQL cannot store', crafted(`+275760-09-13T00:00:00.000Z|${id}`)],
    ['a negative year', crafted(`-271821-04-20T00:00:00.000Z|${id}`)],
    ['year 0', crafted(`0000-01-01T00:00:00.000Z|${id}`)],
    ['a day that does not exist', crafted(`2024-02-30T00:00:00.000Z|${id}`)],
    ['a date without a time', crafted(`2024-02-01|${id}`)],
    ['an id of 36 dashes', crafted(`2024-01-01T00:00:00.000Z|${'-'.repeat(36)}`)],
    ['a urn:uuid id', crafted(`2024-01-01T00:00:00.000Z|urn:uuid:${id}`)],
    ['an uppercase id', crafted(`2024-01-01T00:00:00.000Z|${id.toUpperCase()}`)],
    ['a third part', crafted(`2024-01-01T00:00:00.000Z|${id}|x`)],
    ['a NUL', crafted('\u0000|\u0000')],
    ['not base64url', '!!!'],
    ['an empty cursor', ''],
  ])('refuse %s with request/invalid-cursor', (_name, cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(DomainError);
    try {
      decodeCursor(cursor);
    } catch (error) {
      expect(error).toMatchObject({ type: 'request/invalid-cursor', status: 400 });
    }
  });
});
