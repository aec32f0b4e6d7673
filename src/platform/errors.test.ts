import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { problemCatalogue } from './errors.ts';

describe('the error catalogue', () => {
  it('is documented in docs/errors.md, type for type and status for status', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const documented = new Map(
      [...doc.matchAll(/^\| `([a-z0-9/-]+)`\s*\|\s*(\d{3})\s*\|/gm)].map((match) => [
        match[1],
        Number(match[2]),
      ]),
    );
    const catalogued = new Map(Object.entries(problemCatalogue).map(([type, entry]) => [type, entry.status]));
    expect(documented).toEqual(catalogued);
  });
});
