import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { alertsFile } from '../../test/support/promtool.ts';
import { dependencyUp, HealthRegistry } from './health.ts';
import { loopReports } from './loop-report.ts';
import {
  type LoopState,
  loopStaleSecondsMinDefault,
  ownLoopsCheck,
  staleAfterSeconds,
  wedgedLoops,
} from './loops.ts';
import { registerLoop } from './metrics.ts';

const at = 1_000_000_000;
const loop = (worker: string, scope: LoopState['scope'], intervalSeconds: number, ageSeconds: number) => ({
  worker,
  scope,
  intervalSeconds,
  lastSuccessMs: at - ageSeconds * 1_000,
});

describe('a loop is stale after three intervals, never under the floor', () => {
  it('takes three intervals above the floor and the floor below it', () => {
    expect(staleAfterSeconds(300, 180)).toBe(900);
    expect(staleAfterSeconds(1, 180)).toBe(180);
    expect(staleAfterSeconds(1, 5)).toBe(5);
    expect(staleAfterSeconds(10, 5)).toBe(30);
  });

  it('has the floor WorkerLoopStale has in ops/prometheus/alerts.yml', async () => {
    const rules = parse(await readFile(alertsFile, 'utf8')) as {
      groups: { rules: { alert?: string; expr: string }[] }[];
    };
    const expr = rules.groups
      .flatMap((group) => group.rules)
      .find((rule) => rule.alert === 'WorkerLoopStale')?.expr;
    expect(expr).toMatch(/clamp_min\(\s*3 \* /);
    expect(Number(/,\s*(\d+)\)\s*$/.exec(expr ?? '')?.[1])).toBe(loopStaleSecondsMinDefault);
  });

  it("names only this process's own loops past their time, not shared cron loops another process runs", () => {
    const states = [
      loop('payout', 'process', 1, 6),
      loop('deposit_watcher', 'process', 1, 4),
      loop('audit_seal', 'shared', 60, 3_600),
    ];
    expect(wedgedLoops(states, 5, at)).toEqual([{ worker: 'payout', ageSeconds: 6, staleAfterSeconds: 5 }]);
    expect(wedgedLoops(states, 10, at)).toEqual([]);
  });
});

describe("readiness of this process's loops", () => {
  it('is down, naming the loop, when a loop of this process has not succeeded in time', async () => {
    registerLoop('loops_test_engine', 0.5, 'process');
    const check = ownLoopsCheck({ critical: true, staleSecondsMin: 2, clock: () => Date.now() + 10_000 });
    const result = await check.check();
    expect(result.status).toBe('down');
    expect(result.detail).toMatch(/loops_test_engine last succeeded 10 s ago \(stale after 2 s\)/);
  });

  it('is ok while every loop of this process succeeded within its time', async () => {
    registerLoop('loops_test_engine', 0.5, 'process');
    const check = ownLoopsCheck({ critical: true, staleSecondsMin: 2 });
    expect((await check.check()).status).toBe('ok');
  });
});

describe('dependency_up', () => {
  it('is 1 for ok, 0.5 for degraded and 0 for down', async () => {
    const health = new HealthRegistry();
    for (const status of ['ok', 'degraded', 'down'] as const) {
      health.register({ name: `dep_${status}`, critical: false, check: async () => ({ status }) });
    }
    await health.run();
    const values = (await dependencyUp.get()).values;
    const of = (name: string) => values.find((value) => value.labels.dependency === name)?.value;
    expect([of('dep_ok'), of('dep_degraded'), of('dep_down')]).toEqual([1, 0.5, 0]);
  });
});

describe('what a process reports of its loops', () => {
  it('sends each loop with its stale-after time and the age of its last success', () => {
    const reports = loopReports(
      [loop('payout', 'process', 0.2, 3), loop('audit_seal', 'shared', 60, 30)],
      4,
      at,
    );
    expect(reports).toEqual([
      { worker: 'payout', intervalSeconds: 0.2, staleAfterSeconds: 4, ageSeconds: 3 },
      { worker: 'audit_seal', intervalSeconds: 60, staleAfterSeconds: 180, ageSeconds: 30 },
    ]);
  });
});
