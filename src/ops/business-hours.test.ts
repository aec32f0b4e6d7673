import { describe, expect, it } from 'vitest';
import type { OncallConfig } from '../platform/config.ts';
import { registry } from '../platform/metrics.ts';
import { exportBusinessHours, isBusinessHours } from './business-hours.ts';

const berlin: OncallConfig = {
  timeZone: 'Europe/Berlin',
  businessDays: ['mon', 'tue', 'wed', 'thu', 'fri'],
  businessOpenMinute: 9 * 60,
  businessShutMinute: 17 * 60,
};

function at(iso: string): boolean {
  return isBusinessHours(berlin, new Date(iso));
}

describe('business hours', () => {
  it('open at 09:00 Berlin time, which is 08:00 UTC in winter and 07:00 UTC in summer', () => {
    // Wednesday 15 January 2025 (CET, UTC+1) and Tuesday 15 July 2025 (CEST, UTC+2).
    expect(at('2025-01-15T07:59:59Z')).toBe(false);
    expect(at('2025-01-15T08:00:00Z')).toBe(true);
    expect(at('2025-07-15T06:59:59Z')).toBe(false);
    expect(at('2025-07-15T07:00:00Z')).toBe(true);
  });

  it('closed from 17:00 local time on, and on the first business day after a daylight-saving change', () => {
    expect(at('2025-01-15T15:59:59Z')).toBe(true);
    expect(at('2025-01-15T16:00:00Z')).toBe(false);
    expect(at('2025-07-15T14:59:59Z')).toBe(true);
    expect(at('2025-07-15T15:00:00Z')).toBe(false);
    // Clocks went forward on Sunday 30 March 2025: Monday opens at 07:00 UTC.
    expect(at('2025-03-31T06:30:00Z')).toBe(false);
    expect(at('2025-03-31T07:00:00Z')).toBe(true);
  });

  it('closed all day on a day that is not a business day, by the local date rather than UTC', () => {
    expect(at('2025-01-18T10:00:00Z')).toBe(false); // Saturday
    // Friday 23:30 UTC is already Saturday 00:30 in Berlin; Sunday 23:30 UTC is Monday 00:30.
    const allDay = { ...berlin, businessOpenMinute: 0, businessShutMinute: 1440 };
    expect(isBusinessHours(allDay, new Date('2025-01-17T23:30:00Z'))).toBe(false);
    expect(isBusinessHours(allDay, new Date('2025-01-19T23:30:00Z'))).toBe(true);
  });

  it('is exported as oncall_business_hours with the time zone once a process sets it', async () => {
    exportBusinessHours({
      timeZone: 'Pacific/Auckland',
      businessDays: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
      businessOpenMinute: 0,
      businessShutMinute: 1440,
    });
    const metric = (await registry.getMetricsAsJSON()).find(
      (entry) => entry.name === 'oncall_business_hours',
    );
    expect(metric?.values).toEqual([{ labels: { time_zone: 'Pacific/Auckland' }, value: 1 }]);
  });
});
