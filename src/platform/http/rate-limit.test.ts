import { describe, expect, it } from 'vitest';
import { LocalCounters, localKeysMax } from './rate-limit.ts';

describe('per-instance rate-limit counters', () => {
  it('counts within a window and starts again once it has passed', () => {
    const counters = new LocalCounters();
    expect(counters.increment('caller:a', 1_000, 10_000)).toEqual({ current: 1, ttlMs: 1_000 });
    expect(counters.increment('caller:a', 1_000, 10_400)).toEqual({ current: 2, ttlMs: 600 });
    expect(counters.increment('caller:b', 1_000, 10_400)).toEqual({ current: 1, ttlMs: 1_000 });
    expect(counters.increment('caller:a', 1_000, 11_000)).toEqual({ current: 1, ttlMs: 1_000 });
  });

  it('keeps at most localKeysMax counters, dropping the oldest window first', () => {
    const counters = new LocalCounters();
    for (let key = 0; key < localKeysMax; key += 1) counters.increment(`address:${key}`, 60_000, 0);
    counters.increment('address:0', 60_000, 1);
    counters.increment('address:new', 60_000, 2);
    // address:0 was counted twice but is still the oldest window: it went to make room.
    expect(counters.increment('address:0', 60_000, 3).current).toBe(1);
    expect(counters.increment('address:new', 60_000, 3).current).toBe(2);
  });
});
