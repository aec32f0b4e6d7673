import { badRequest, type Problem } from './http.ts';
import { pageLimitDefault, pageLimitMax } from './limits.ts';

/** Horizon's cursor paging: `cursor`, `order`, `limit` and the `_links` that continue a page. */

export type Page = { cursor: bigint | 'now' | undefined; order: 'asc' | 'desc'; limit: number };

const cursorPattern = /^\d{1,20}$/;
const int64Max = 9_223_372_036_854_775_807n;

export function readPage(url: URL): Page | Problem {
  const cursorText = url.searchParams.get('cursor');
  const orderText = url.searchParams.get('order') ?? 'asc';
  const limitText = url.searchParams.get('limit');
  let cursor: Page['cursor'];
  if (cursorText === 'now') cursor = 'now';
  else if (cursorText !== null && cursorText !== '') {
    if (!cursorPattern.test(cursorText) || BigInt(cursorText) > int64Max) {
      return badRequest('cursor', 'cursor must be a paging token or now');
    }
    cursor = BigInt(cursorText);
  }
  if (orderText !== 'asc' && orderText !== 'desc') return badRequest('order', 'order must be asc or desc');
  const limit = limitText === null || limitText === '' ? pageLimitDefault : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > pageLimitMax) {
    return badRequest('limit', `limit must be between 1 and ${pageLimitMax}`);
  }
  return { cursor, order: orderText, limit };
}

export function isProblem(value: Page | Problem): value is Problem {
  return 'status' in value;
}

/** Records after the cursor in the page's order; `records` must be sorted ascending by token. */
export function pageOf<T>(
  records: readonly T[],
  token: (record: T) => bigint,
  page: Page,
  latest: bigint,
): T[] {
  const cursor = page.cursor === 'now' ? latest : page.cursor;
  const selected: T[] = [];
  if (page.order === 'asc') {
    for (const record of records) {
      if (cursor !== undefined && token(record) <= cursor) continue;
      selected.push(record);
      if (selected.length >= page.limit) break;
    }
    return selected;
  }
  for (let index = records.length - 1; index >= 0; index -= 1) {
    const record = records[index];
    if (record === undefined || (cursor !== undefined && token(record) >= cursor)) continue;
    selected.push(record);
    if (selected.length >= page.limit) break;
  }
  return selected;
}

export function pageLinks(base: string, url: URL, page: Page, tokens: string[]) {
  const href = (cursor: string | undefined, order: string) => {
    const next = new URL(url.pathname, base);
    for (const [key, value] of url.searchParams) next.searchParams.set(key, value);
    if (cursor !== undefined) next.searchParams.set('cursor', cursor);
    next.searchParams.set('limit', String(page.limit));
    next.searchParams.set('order', order);
    return next.toString();
  };
  const reverse = page.order === 'asc' ? 'desc' : 'asc';
  const current = page.cursor === undefined ? undefined : String(page.cursor);
  return {
    self: { href: href(current, page.order) },
    next: { href: href(tokens.at(-1) ?? current, page.order) },
    prev: { href: href(tokens[0] ?? current, reverse) },
  };
}
