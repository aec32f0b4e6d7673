import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configuredEndpoints } from '../stellar/connect.ts';
import { ConfigError, loadConfig } from './config.ts';

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env, '/srv/app');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('configuration', () => {
  it('has zero-config defaults: port 8080, data in ./.settledesk, embedded database', () => {
    const config = loadConfig({}, '/srv/app');
    expect(config.port).toBe(8080);
    expect(config.dataDir).toBe('/srv/app/.settledesk');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.logLevel).toBe('info');
  });

  it('names every bad variable and why, in one error', () => {
    const problems = problemsOf({
      PORT: 'abc',
      LOG_LEVEL: 'loud',
      DATABASE_URL: 'mysql://x',
      WORKER_CONCURRENCY: '0',
    });
    expect(problems).toHaveLength(4);
    expect(problems.find((p) => p.startsWith('PORT:'))).toContain('"abc"');
    expect(problems.some((p) => p.startsWith('LOG_LEVEL:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('DATABASE_URL:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('WORKER_CONCURRENCY:'))).toBe(true);
  });

  it('refuses a port out of range and a keyring key of the wrong size', () => {
    expect(problemsOf({ PORT: '70000' })[0]).toMatch(/^PORT: must be between/);
    expect(problemsOf({ SETTLEDESK_KEYRING_KEY: 'c2hvcnQ=' })[0]).toMatch(/^SETTLEDESK_KEYRING_KEY:/);
  });

  it('judges loops stale after 180 s at least, as WorkerLoopStale does, and refuses a floor under two reports', () => {
    expect(loadConfig({}, '/srv/app').loops).toEqual({ staleSecondsMin: 180, reportIntervalMs: 10_000 });
    expect(problemsOf({ LOOP_STALE_SECONDS_MIN: '4', LOOP_REPORT_INTERVAL_MS: '2000' })).toEqual([]);
    expect(problemsOf({ LOOP_STALE_SECONDS_MIN: '15' })).toEqual([
      'LOOP_STALE_SECONDS_MIN: must be at least two LOOP_REPORT_INTERVAL_MS',
    ]);
  });

  it('reads the rate limits with named defaults and refuses a limit of zero or a prefix Redis keys should not have', () => {
    expect(loadConfig({}, '/srv/app').rateLimits).toEqual({
      windowMs: 60_000,
      callerMax: 1_200,
      addressMax: 300,
      redisPrefix: 'settledesk:rate-limit:',
    });
    expect(
      loadConfig({ RATE_LIMIT_CALLER_MAX: '50', RATE_LIMIT_REDIS_PREFIX: 'eu-1:rl:' }, '/srv/app').rateLimits,
    ).toMatchObject({ callerMax: 50, redisPrefix: 'eu-1:rl:' });
    expect(
      problemsOf({
        RATE_LIMIT_CALLER_MAX: '0',
        RATE_LIMIT_ADDRESS_MAX: '1000001',
        RATE_LIMIT_WINDOW_MS: '999',
        RATE_LIMIT_REDIS_PREFIX: 'has space',
      }).map((problem) => problem.split(':')[0]),
    ).toEqual([
      'RATE_LIMIT_WINDOW_MS',
      'RATE_LIMIT_CALLER_MAX',
      'RATE_LIMIT_ADDRESS_MAX',
      'RATE_LIMIT_REDIS_PREFIX',
    ]);
  });

  it('accepts a multi-host URL with target_session_attrs for failover', () => {
    const url = 'postgres://app@db1:5432,db2:5433/settledesk?target_session_attrs=read-write';
    expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it('settles on the in-process sandbox unless Stellar URLs or a public network are configured', () => {
    const sandbox = loadConfig({}, '/srv/app');
    expect(configuredEndpoints(sandbox)).toBeUndefined();
    expect(sandbox.sandbox).toEqual({ port: 8000, horizonListeners: 2, ledgerCloseMs: 5_000 });

    const external = loadConfig({ STELLAR_HORIZON_URLS: 'http://10.0.0.1:8000/, http://10.0.0.2:8000' });
    expect(configuredEndpoints(external)).toMatchObject({
      network: 'sandbox',
      horizonUrls: ['http://10.0.0.1:8000', 'http://10.0.0.2:8000'],
      rpcUrl: 'http://10.0.0.1:8000/rpc',
    });

    const testnet = configuredEndpoints(loadConfig({ STELLAR_NETWORK: 'testnet' }));
    expect(testnet?.horizonUrls).toEqual(['https://horizon-testnet.stellar.org']);
    expect(testnet?.networkPassphrase).toBe('Test SDF Network ; September 2015');
  });

  it('refuses malformed Stellar URLs, an RPC URL alone, and a Horizon without RPC on mainnet', () => {
    expect(problemsOf({ STELLAR_HORIZON_URLS: 'ftp://horizon' })[0]).toMatch(/^STELLAR_HORIZON_URLS:/);
    expect(problemsOf({ STELLAR_RPC_URL: 'http://rpc:8000' })[0]).toMatch(
      /^STELLAR_RPC_URL: set STELLAR_HORIZON_URLS/,
    );
    expect(
      problemsOf({ STELLAR_NETWORK: 'mainnet', STELLAR_HORIZON_URLS: 'https://horizon.example' })[0],
    ).toMatch(/^STELLAR_RPC_URL: required/);
    expect(problemsOf({ STELLAR_NETWORK: 'futurenet' })[0]).toMatch(/^STELLAR_NETWORK:/);
    expect(problemsOf({ SANDBOX_LEDGER_CLOSE_MS: '5' })[0]).toMatch(/^SANDBOX_LEDGER_CLOSE_MS:/);
  });
  it('reads business hours as days, minutes and a named time zone, Monday to Friday 09:00-17:00 UTC by default', () => {
    expect(loadConfig({}).oncall).toEqual({
      timeZone: 'UTC',
      businessDays: ['mon', 'tue', 'wed', 'thu', 'fri'],
      businessOpenMinute: 540,
      businessShutMinute: 1020,
    });
    expect(
      loadConfig({
        ONCALL_TIME_ZONE: 'Asia/Jerusalem',
        ONCALL_BUSINESS_DAYS: 'sun-thu',
        ONCALL_BUSINESS_HOURS: '08:30-24:00',
      }).oncall,
    ).toEqual({
      timeZone: 'Asia/Jerusalem',
      businessDays: ['mon', 'tue', 'wed', 'thu', 'sun'],
      businessOpenMinute: 510,
      businessShutMinute: 1440,
    });
    expect(loadConfig({ ONCALL_BUSINESS_DAYS: 'fri, mon,wed-wed' }).oncall.businessDays).toEqual([
      'mon',
      'wed',
      'fri',
    ]);
  });

  it('refuses an unknown time zone, unknown days, and hours that are malformed, empty or cross midnight', () => {
    expect(problemsOf({ ONCALL_TIME_ZONE: 'Mars/Olympus' })).toEqual([
      'ONCALL_TIME_ZONE: must be an IANA time zone name such as Europe/Berlin or UTC, got "Mars/Olympus"',
    ]);
    for (const days of ['weekdays', 'mon-fri-sat', 'mon,,fri', 'monday'])
      expect(problemsOf({ ONCALL_BUSINESS_DAYS: days }), days).toEqual([
        expect.stringMatching(/^ONCALL_BUSINESS_DAYS: must be days or ranges/),
      ]);
    for (const hours of [
      '9-17',
      '09:00',
      '17:00-09:00',
      '09:00-09:00',
      '09:60-17:00',
      '09:00-24:01',
      '00:00-25:00',
    ])
      expect(problemsOf({ ONCALL_BUSINESS_HOURS: hours }), hours).toEqual([
        expect.stringMatching(/^ONCALL_BUSINESS_HOURS: must be HH:MM-HH:MM/),
      ]);
  });

  it('reads the redaction names from the variable and the file, and never echoes a refused name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'settledesk-names-'));
    writeFileSync(join(dir, 'names.txt'), '# on-call rota\nGrace Hopper\n\nLinus  # a first name\n');
    const config = loadConfig(
      { PII_REDACTION_NAMES: 'Ada Lovelace, Linus', PII_REDACTION_NAMES_FILE: 'names.txt' },
      dir,
    );
    expect(config.communications.redactionNames).toEqual(['Ada Lovelace', 'Linus', 'Grace Hopper']);
    expect(problemsOf({ PII_REDACTION_NAMES: 'Ada Lovelace,X' })).toEqual([
      'PII_REDACTION_NAMES: 1 name(s) not between 2 and 100 characters',
    ]);
    expect(problemsOf({ PII_REDACTION_NAMES_FILE: join(dir, 'missing.txt') })).toEqual([
      'PII_REDACTION_NAMES_FILE: cannot read the file (ENOENT)',
    ]);
  });

  it('lists the status page components, in order, and refuses a name that is not one', () => {
    expect(loadConfig({}, '/srv/app').communications.statusComponents).toEqual([
      'api',
      'payouts',
      'deposits',
      'escrow',
      'webhooks',
    ]);
    expect(
      loadConfig({ STATUS_PAGE_COMPONENTS: 'payouts, api' }, '/srv/app').communications.statusComponents,
    ).toEqual(['payouts', 'api']);
    expect(problemsOf({ STATUS_PAGE_COMPONENTS: 'API,<b>' })[0]).toMatch(/^STATUS_PAGE_COMPONENTS: must be/);
  });

  it('takes an incident webhook as an https:// URL (http:// to loopback only) with a whsec_ secret, both or neither', () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    expect(loadConfig({}, '/srv/app').incidentWebhook).toBeUndefined();
    const https = {
      INCIDENT_WEBHOOK_URL: 'https://oncall.example.com/hooks',
      INCIDENT_WEBHOOK_SECRET: secret,
    };
    expect(loadConfig(https, '/srv/app').incidentWebhook).toEqual({
      url: 'https://oncall.example.com/hooks',
      secret,
    });
    const local = { INCIDENT_WEBHOOK_URL: 'http://127.0.0.1:9000/hook', INCIDENT_WEBHOOK_SECRET: secret };
    expect(loadConfig(local, '/srv/app').incidentWebhook?.url).toBe('http://127.0.0.1:9000/hook');
    expect(problemsOf({ ...https, INCIDENT_WEBHOOK_URL: 'http://oncall.example.com/hooks' })[0]).toMatch(
      /^INCIDENT_WEBHOOK_URL: must be an https:/,
    );
    expect(problemsOf({ INCIDENT_WEBHOOK_URL: https.INCIDENT_WEBHOOK_URL })[0]).toMatch(
      /^INCIDENT_WEBHOOK_SECRET:/,
    );
    const short = problemsOf({ ...https, INCIDENT_WEBHOOK_SECRET: 'whsec_c2hvcnQ=' });
    expect(short).toHaveLength(1);
    expect(short[0]).not.toContain('c2hvcnQ');
    expect(problemsOf({ INCIDENT_WEBHOOK_SECRET: secret })[0]).toMatch(/^INCIDENT_WEBHOOK_URL:/);
  });

  it('reads payout approval thresholds per asset, a credit asset with its issuer, and refuses bad items', () => {
    const issuer = `G${'A'.repeat(55)}`;
    const config = loadConfig(
      {
        PAYOUT_APPROVAL_THRESHOLDS: `XLM:10000, USDC:${issuer}:5000.5`,
        PAYOUT_APPROVAL_DAILY_TOTALS: 'XLM:50000',
      },
      '/srv/app',
    );
    expect([...config.payouts.approvalThresholds]).toEqual([
      ['XLM', '10000'],
      [`USDC:${issuer}`, '5000.5'],
    ]);
    expect([...config.payouts.approvalDailyTotals]).toEqual([['XLM', '50000']]);
    expect(loadConfig({}, '/srv/app').payouts.approvalThresholds.size).toBe(0);
    for (const bad of ['XLM', 'XLM:', ':5', 'XLM:0', 'XLM:-1', 'XLM:1e3', 'XLM:1,XLM:2']) {
      const problems = problemsOf({ PAYOUT_APPROVAL_THRESHOLDS: bad });
      expect(problems, bad).toHaveLength(1);
      expect(problems[0]).toMatch(/^PAYOUT_APPROVAL_THRESHOLDS: each item must be ASSET:AMOUNT/);
    }
  });
});
