import { Gauge } from 'prom-client';
import { assert } from '../platform/assert.ts';
import { type OncallConfig, type Weekday, weekdays } from '../platform/config.ts';
import { registry } from '../platform/metrics.ts';

/** Whether `at` falls on a business day, from the opening minute until before the closing one, in the zone. */
export function isBusinessHours(oncall: OncallConfig, at: Date): boolean {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: oncall.timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((entry) => entry.type === type)?.value;
  const day = part('weekday')?.toLowerCase() as Weekday;
  assert(weekdays.includes(day), `Intl gave an unexpected weekday ${part('weekday')}`);
  const minute = Number(part('hour')) * 60 + Number(part('minute'));
  return (
    oncall.businessDays.includes(day) &&
    minute >= oncall.businessOpenMinute &&
    minute < oncall.businessShutMinute
  );
}

/**
 * Set by the process that reports the manual review queue (the worker), so the gauge is computed
 * at each scrape from that process's own configuration; a process that has not set it exports no
 * sample rather than a guess.
 */
let exported: OncallConfig | undefined;

export const businessHoursGauge = new Gauge({
  name: 'oncall_business_hours',
  help: '1 during business hours (ONCALL_BUSINESS_HOURS on ONCALL_BUSINESS_DAYS in ONCALL_TIME_ZONE, named by time_zone), else 0.',
  labelNames: ['time_zone'] as const,
  registers: [registry],
  collect() {
    if (exported === undefined) return;
    this.reset();
    this.set({ time_zone: exported.timeZone }, isBusinessHours(exported, new Date()) ? 1 : 0);
  },
});

export function exportBusinessHours(oncall: OncallConfig): void {
  exported = oncall;
}
