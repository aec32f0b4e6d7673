import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Severity, severities } from '../incidents/states.ts';
import { type StellarNetworkName, stellarNetworks } from '../stellar/endpoints.ts';
import { type AllowedEntry, allowedEntry } from '../webhooks/address-policy.ts';
import { secretByteLength, secretBytesMax, secretBytesMin } from '../webhooks/signing.ts';
import { loopStaleSecondsMinDefault } from './loops.ts';

/**
 * Configuration is read once from the environment, validated synchronously before anything
 * listens, and then passed down explicitly. Every problem is collected so that one failed start
 * names every bad variable, not only the first.
 */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const logLevels: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export type Config = {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  logLevel: LogLevel;
  redisUrl: string | undefined;
  rateLimits: RateLimitConfig;
  keyringKeyBase64: string | undefined;
  /** Earlier keyring keys, still opening what they sealed until `keyring_reencrypt` re-seals it. */
  keyringPreviousKeysBase64: string[];
  accessReloadMs: number;
  /** How often `serve` probes Stellar and every readiness check (gauges, triage summary). */
  statusProbeIntervalMs: number;
  /** Where `settledesk worker` serves `/metrics` (0: a free port chosen at start). */
  workerMetricsPort: number;
  tokenTtlSecondsDefault: number;
  tokenTtlSecondsMax: number;
  workerEnabled: boolean;
  workerConcurrency: number;
  workerPollIntervalMs: number;
  shutdownTimeoutMs: number;
  approvalTtlSecondsDefault: number;
  idempotencyRetentionSeconds: number;
  approvalTtlSecondsMax: number;
  requestBodyBytesMax: number;
  stellar: StellarConfig;
  sandbox: SandboxConfig;
  payouts: PayoutConfig;
  deposits: DepositConfig;
  merchantWebhooks: MerchantWebhookConfig;
  /** Where escalation steps are also sent, signed (src/incidents/webhook.ts); unset: log and timeline only. */
  incidentWebhook: IncidentWebhookConfig | undefined;
  reconciliation: ReconciliationConfig;
  oncall: OncallConfig;
  loops: LoopsConfig;
  communications: CommunicationsConfig;
  alertmanager: AlertmanagerConfig;
};

/** Request rate limits (src/platform/http/rate-limit.ts); see docs/configuration.md. */
export type RateLimitConfig = {
  /** The fixed window every limit counts in. */
  windowMs: number;
  /** Requests per window for one authenticated caller (token subject), over every route. */
  callerMax: number;
  /** Requests per window for one source address on the public routes (webhooks, status pages). */
  addressMax: number;
  /** What every counter's Redis key starts with, so deployments sharing a Redis keep apart. */
  redisPrefix: string;
};

/** Public incident messages and the status page (docs/incidents.md, Communications). */
export type CommunicationsConfig = {
  /** Personal names no public message may contain: PII_REDACTION_NAMES and PII_REDACTION_NAMES_FILE. */
  redactionNames: readonly string[];
  /** The components the public status page lists, in this order. */
  statusComponents: readonly string[];
};

/** The Alertmanager intake (`POST /internal/alertmanager`); see docs/incidents.md. */
export type AlertmanagerConfig = {
  /**
   * Bearer secrets Alertmanager's `http_config.authorization` may send instead of a service token:
   * the current one, then the previous one while it is rotated out. Empty: service tokens only.
   */
  webhookTokens: readonly string[];
  /** The `severity` label's value → the severity of the incident it opens; `*` for any other. */
  severityMap: Readonly<Record<string, Severity>>;
};

/** How loops are judged and reported (src/platform/loops.ts, src/platform/loop-report.ts). */
export type LoopsConfig = {
  /** The floor of a loop's stale-after time in this process's readiness and triage rows. */
  staleSecondsMin: number;
  /** How often a process writes its loops into `worker_loops`. */
  reportIntervalMs: number;
};

export const weekdays = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof weekdays)[number];

/**
 * When a person is at work to pick up what does not page (the manual review queue): exported as
 * `oncall_business_hours`, which alerts join on (ops/README.md). Hours are local to a named time
 * zone, so they follow its daylight-saving changes, which PromQL's UTC `hour()` cannot.
 */
export type OncallConfig = {
  timeZone: string;
  businessDays: readonly Weekday[];
  /** Minutes after local midnight: open from businessOpenMinute, closed from businessShutMinute. */
  businessOpenMinute: number;
  businessShutMinute: number;
};

/** The reconciliation detectors' thresholds; see docs/reconciliation.md. */
export type ReconciliationConfig = {
  stuckAfterSeconds: number;
  stuckReleaseAfterSeconds: number;
  streamRunStuckAfterSeconds: number;
  streamOverdueAfterSeconds: number;
  chainDriftToleranceStroops: bigint;
  chainDriftGraceSeconds: number;
  /** A caller paying out more than this × its trailing daily average in 24 h is unusual (payout_volume). */
  payoutVolumeFactor: number;
  /** Per asset code: a caller paying out more than this in 24 h is unusual, whatever its history. */
  payoutVolumeDailyTotals: ReadonlyMap<string, string>;
};

/** Outbound webhooks to merchants: the delivery bounds; see docs/webhooks.md. */
export type MerchantWebhookConfig = {
  attemptsMax: number;
  timeoutMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Plain http:// endpoint URLs are refused unless this is set (local development, tests). */
  allowHttp: boolean;
  /** Hosts, addresses and CIDR blocks an endpoint may reach although they are private (SSRF guard). */
  allowedHosts: readonly AllowedEntry[];
};

/** The outbound incident webhook: an https:// URL (http:// only to a loopback host) and its whsec_ secret. */
export type IncidentWebhookConfig = { url: string; secret: string };

/** Provider webhook secrets: `DEPOSIT_WEBHOOK_SECRET_<PROVIDER>=current[,previous]`. */
export type DepositConfig = {
  webhookSecrets: Readonly<Record<string, readonly string[]>>;
  webhookToleranceSeconds: number;
  watcherPollMs: number;
};

/** The settlement engine's bounds; see docs/payouts.md. */
export type PayoutConfig = {
  hotWalletSecret: string | undefined;
  channelSecrets: string[] | undefined;
  /** How many channel accounts to generate when none are configured (sandbox only). */
  channelCount: number;
  batchSizeMax: number;
  feeCapStroops: bigint;
  windowSeconds: number;
  windowLedgers: number;
  resubmitAfterMs: number;
  manualReviewAfterMs: number;
  pollMs: number;
  /** Per asset code: a payout above this amount waits for a second admin (PAYOUT_APPROVAL_THRESHOLDS). */
  approvalThresholds: ReadonlyMap<string, string>;
  /** Per asset code: a payout taking its source's 24 h total above this waits too (PAYOUT_APPROVAL_DAILY_TOTALS). */
  approvalDailyTotals: ReadonlyMap<string, string>;
};

export const assetAmountsMax = 50;

/** Unset URLs mean: the sandbox this process runs (sandbox), or the public SDF endpoints. */
export type StellarConfig = {
  network: StellarNetworkName;
  horizonUrls: string[] | undefined;
  rpcUrl: string | undefined;
  networkPassphrase: string | undefined;
};

/** The in-process sandbox network, started by `serve` when no Stellar URL is configured. */
export type SandboxConfig = {
  port: number;
  horizonListeners: number;
  ledgerCloseMs: number;
};

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

class Reader {
  readonly problems: string[] = [];
  readonly env: Env;
  constructor(env: Env) {
    this.env = env;
  }

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value)) {
      this.problems.push(`${name}: must be a whole number between ${min} and ${max}, got "${value}"`);
      return fallback;
    }
    const parsed = Number(value);
    if (parsed < min || parsed > max) {
      this.problems.push(`${name}: must be between ${min} and ${max}, got ${value}`);
      return fallback;
    }
    return parsed;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const match = allowed.find((candidate) => candidate === value);
    if (match === undefined) {
      this.problems.push(`${name}: must be one of ${allowed.join(', ')}, got "${value}"`);
      return fallback;
    }
    return match;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.oneOf(name, ['true', 'false', '1', '0', 'on', 'off'], fallback ? 'true' : 'false');
    return value === 'true' || value === '1' || value === 'on';
  }

  /** Accepts single- and multi-host URLs (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=…`). */
  postgresUrl(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!/^postgres(ql)?:\/\/[^/?#\s]+(\/[^?#\s]*)?(\?[^#\s]*)?$/.test(value)) {
      this.problems.push(`${name}: must be a postgres:// or postgresql:// URL`);
      return undefined;
    }
    return value;
  }

  redisUrl(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!/^rediss?:\/\/\S+$/.test(value)) {
      this.problems.push(`${name}: must be a redis:// or rediss:// URL`);
      return undefined;
    }
    return value;
  }

  httpUrls(name: string): string[] | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const urls = value.split(',').map((url) => url.trim().replace(/\/+$/, ''));
    if (
      urls.length > stellarUrlsMax ||
      urls.some((url) => !/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(url))
    ) {
      this.problems.push(`${name}: must be up to ${stellarUrlsMax} comma-separated http:// or https:// URLs`);
      return undefined;
    }
    return urls;
  }

  stellarSecrets(name: string): string[] | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    const secrets = value.split(',').map((secret) => secret.trim());
    if (secrets.length > channelsMax || secrets.some((secret) => !/^S[A-Z2-7]{55}$/.test(secret))) {
      // Never echo the value: it is a secret.
      this.problems.push(`${name}: must be up to ${channelsMax} comma-separated Stellar secret seeds (S…)`);
      return undefined;
    }
    return secrets;
  }

  /** Every `<prefix><NAME>` variable as lower-case name → its comma-separated secrets (1 or 2). */
  secretsByName(prefix: string, lengthMin: number): Record<string, string[]> {
    const found: Record<string, string[]> = {};
    for (const [key, value] of Object.entries(this.env)) {
      if (!key.startsWith(prefix) || value === undefined || value.trim() === '') continue;
      const name = key.slice(prefix.length).toLowerCase();
      const secrets = value.split(',').map((secret) => secret.trim());
      if (
        !/^[a-z][a-z0-9_]{0,39}$/.test(name) ||
        secrets.length > 2 ||
        secrets.some((secret) => secret.length < lengthMin)
      ) {
        // Never echo the value: it is a secret.
        this.problems.push(
          `${key}: must be one or two comma-separated secrets of at least ${lengthMin} characters`,
        );
        continue;
      }
      found[name] = secrets;
    }
    return found;
  }

  /** One or two comma-separated bearer secrets (current, previous), as a bearer token may carry them. */
  bearerSecrets(name: string, lengthMin: number): string[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    const secrets = value.split(',').map((secret) => secret.trim());
    if (
      secrets.length > 2 ||
      secrets.some((secret) => !bearerSecretPattern.test(secret) || secret.length < lengthMin)
    ) {
      // Never echo the value: it is a secret.
      this.problems.push(
        `${name}: must be one or two comma-separated secrets of at least ${lengthMin} characters of A-Z a-z 0-9 . _ ~ + / = -`,
      );
      return [];
    }
    return secrets;
  }

  /** `value:P1,other:P3,*:P3`: a label value (or `*`) to a severity, at most severityMapEntriesMax. */
  severityMap(name: string, fallback: string): Record<string, Severity> {
    const text = this.raw(name) ?? fallback;
    const entries = text.split(',').map((entry) => /^([A-Za-z0-9_.*-]{1,60}):(P[0-3])$/.exec(entry.trim()));
    if (entries.length > severityMapEntriesMax || entries.some((entry) => entry === null)) {
      this.problems.push(
        `${name}: must be up to ${severityMapEntriesMax} comma-separated value:severity pairs such as page:P1,warning:P3,*:P3 (severities ${severities.join(', ')}), got "${text}"`,
      );
      return this.severityMap('', fallback);
    }
    return Object.fromEntries(entries.map((entry) => [entry?.[1], entry?.[2] as Severity]));
  }

  /** Up to `countMax` comma-separated base64 keys of `bytes` bytes each; none when unset. */
  base64Keys(name: string, bytes: number, countMax: number): string[] {
    const value = this.raw(name);
    if (value === undefined || value.trim() === '') return [];
    const keys = value.split(',').map((key) => key.trim());
    if (
      keys.length > countMax ||
      keys.some((key) => !/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, 'base64').length !== bytes)
    ) {
      // Never echo the value: it is a secret.
      this.problems.push(`${name}: must be up to ${countMax} comma-separated ${bytes}-byte keys in base64`);
      return [];
    }
    return keys;
  }

  base64Key(name: string, bytes: number): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || Buffer.from(value, 'base64').length !== bytes) {
      this.problems.push(`${name}: must be ${bytes} bytes encoded as base64`);
      return undefined;
    }
    return value;
  }

  /** An IANA time zone name the runtime's time zone database knows (`Europe/Berlin`, `UTC`). */
  timeZone(name: string, fallback: string): string {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    try {
      return new Intl.DateTimeFormat('en-US', { timeZone: value }).resolvedOptions().timeZone;
    } catch {
      this.problems.push(
        `${name}: must be an IANA time zone name such as Europe/Berlin or UTC, got "${value}"`,
      );
      return fallback;
    }
  }

  /** Comma-separated days or ranges of days (`mon-fri`, `sun-thu`, `mon,wed,fri`), in week order. */
  weekdays(name: string, fallback: readonly Weekday[]): readonly Weekday[] {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const chosen = new Set<Weekday>();
    for (const item of value.toLowerCase().split(',')) {
      const ends = item
        .trim()
        .split('-')
        .map((day) => weekdays.indexOf(day.trim() as Weekday));
      if (ends.length > 2 || ends.some((index) => index === -1)) {
        this.problems.push(
          `${name}: must be days or ranges of ${weekdays.join(' ')} such as mon-fri, got "${value}"`,
        );
        return fallback;
      }
      const first = ends[0]!;
      const last = ends.at(-1)!;
      // A range runs forward through the week and may wrap past Sunday (sun-thu).
      for (let day = first; ; day = (day + 1) % weekdays.length) {
        chosen.add(weekdays[day]!);
        if (day === last) break;
      }
    }
    return weekdays.filter((day) => chosen.has(day));
  }

  /**
   * `ASSET:AMOUNT,…` (e.g. `XLM:10000,USDC:G…issuer:5000`): the amount follows the last colon,
   * since a credit asset's code carries its issuer after a colon. Amounts are plain decimals.
   */
  assetAmounts(name: string): ReadonlyMap<string, string> {
    const amounts = new Map<string, string>();
    const value = this.raw(name);
    if (value === undefined) return amounts;
    const items = value.split(',').map((item) => item.trim());
    for (const item of items.slice(0, assetAmountsMax)) {
      const cut = item.lastIndexOf(':');
      const asset = item.slice(0, cut);
      const amount = item.slice(cut + 1);
      if (
        cut < 1 ||
        !/^\d{1,19}(\.\d{1,18})?$/.test(amount) ||
        /^0+(\.0+)?$/.test(amount) ||
        amounts.has(asset)
      ) {
        this.problems.push(
          `${name}: each item must be ASSET:AMOUNT with a positive decimal amount, each asset once (XLM:10000), got "${item}"`,
        );
        continue;
      }
      amounts.set(asset, amount);
    }
    if (items.length > assetAmountsMax) this.problems.push(`${name}: at most ${assetAmountsMax} assets`);
    return amounts;
  }

  /** `HH:MM-HH:MM` within one day (`24:00` closes at midnight) as minutes after midnight. */
  minuteRange(name: string, fallback: readonly [number, number]): readonly [number, number] {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const match = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(value);
    const [open, shut] = match
      ? [Number(match[1]) * 60 + Number(match[2]), Number(match[3]) * 60 + Number(match[4])]
      : [-1, -1];
    const minutesValid = match !== null && Number(match[2]) < 60 && Number(match[4]) < 60;
    if (!minutesValid || open < 0 || open >= shut || shut > minutesPerDay) {
      this.problems.push(
        `${name}: must be HH:MM-HH:MM with the start before the end on one day (09:00-17:00; 24:00 for midnight), got "${value}"`,
      );
      return fallback;
    }
    return [open, shut];
  }
}

export const redactionNameLengthMin = 2;
export const redactionNameLengthMax = 100;
export const redactionNamesMax = 10_000;
export const statusComponentsMax = 20;
const statusComponentPattern = /^[a-z][a-z0-9_-]{0,59}$/;

/**
 * The redaction list: names from PII_REDACTION_NAMES (comma-separated) and from the file named by
 * PII_REDACTION_NAMES_FILE (one per line, `#` starts a comment), which keeps a long list out of
 * the environment. Names are never echoed in a problem: they are the personal data.
 */
function redactionNames(read: Reader, cwd: string): string[] {
  const names = (read.raw('PII_REDACTION_NAMES') ?? '').split(',');
  const file = read.raw('PII_REDACTION_NAMES_FILE');
  if (file !== undefined) {
    try {
      names.push(...readFileSync(resolve(cwd, file), 'utf8').split('\n'));
    } catch (error) {
      const code = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
      read.problems.push(`PII_REDACTION_NAMES_FILE: cannot read the file (${code})`);
    }
  }
  const cleaned = names.map((name) => name.replace(/#.*$/, '').trim()).filter((name) => name !== '');
  const bad = cleaned.filter(
    (name) => name.length < redactionNameLengthMin || name.length > redactionNameLengthMax,
  ).length;
  if (bad > 0) {
    read.problems.push(
      `PII_REDACTION_NAMES: ${bad} name(s) not between ${redactionNameLengthMin} and ${redactionNameLengthMax} characters`,
    );
  }
  if (cleaned.length > redactionNamesMax) {
    read.problems.push(`PII_REDACTION_NAMES: at most ${redactionNamesMax} names, got ${cleaned.length}`);
  }
  return [...new Set(cleaned)];
}

function statusComponents(read: Reader): string[] {
  const value = read.raw('STATUS_PAGE_COMPONENTS') ?? 'api,payouts,deposits,escrow,webhooks';
  const components = [...new Set(value.split(',').map((component) => component.trim()))];
  if (components.length > statusComponentsMax || !components.every((c) => statusComponentPattern.test(c))) {
    read.problems.push(
      `STATUS_PAGE_COMPONENTS: must be up to ${statusComponentsMax} comma-separated names of a-z, 0-9, _ and -, starting with a letter, got "${value}"`,
    );
  }
  return components;
}

export const portMax = 65_535;
export const rateLimitMax = 1_000_000;
const redisPrefixPattern = /^[A-Za-z0-9:_.-]{1,64}$/;
export const stellarUrlsMax = 8;
export const channelsMax = 100;
export const webhookSecretLengthMin = 16;
export const keyringKeyBytes = 32;
/** Keyring keys kept for opening while a rotation re-seals: the last one or two is plenty. */
export const keyringPreviousKeysMax = 3;
export const minutesPerDay = 1_440;
export const alertmanagerTokenLengthMin = 32;
export const severityMapEntriesMax = 20;
/** The incident severity of each alert severity, as the Severities table of ops/README.md says. */
export const severityMapDefault = 'page:P0,critical:P1,warning:P2';
/** What fits in an `Authorization: Bearer` header as the API reads it (src/platform/http/auth.ts). */
const bearerSecretPattern = /^[A-Za-z0-9._~+/=-]+$/;

function redisPrefix(read: Reader): string {
  const value = read.raw('RATE_LIMIT_REDIS_PREFIX') ?? 'settledesk:rate-limit:';
  if (!redisPrefixPattern.test(value)) {
    read.problems.push(
      `RATE_LIMIT_REDIS_PREFIX: must be 1 to 64 characters of A-Z a-z 0-9 : _ . -, got "${value}"`,
    );
  }
  return value;
}

function incidentWebhookConfig(read: Reader): IncidentWebhookConfig | undefined {
  const url = read.raw('INCIDENT_WEBHOOK_URL');
  const secret = read.raw('INCIDENT_WEBHOOK_SECRET');
  if (url === undefined && secret === undefined) return undefined;
  let parsed: URL | undefined;
  try {
    parsed = url === undefined ? undefined : new URL(url);
  } catch {
    parsed = undefined;
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(parsed?.hostname ?? '');
  if (parsed === undefined || !(parsed.protocol === 'https:' || (parsed.protocol === 'http:' && loopback))) {
    read.problems.push(
      'INCIDENT_WEBHOOK_URL: must be an https:// URL (http:// only to 127.0.0.1 or localhost) when INCIDENT_WEBHOOK_SECRET is set',
    );
  }
  const bytes = secret === undefined ? 0 : secretByteLength(secret);
  if (bytes < secretBytesMin || bytes > secretBytesMax) {
    // Never echo the value: it is a secret.
    read.problems.push(
      `INCIDENT_WEBHOOK_SECRET: must be whsec_ followed by ${secretBytesMin} to ${secretBytesMax} bytes in base64 when INCIDENT_WEBHOOK_URL is set`,
    );
  }
  if (parsed === undefined || secret === undefined) return undefined;
  return { url: parsed.toString(), secret };
}

export const allowedHostsMax = 50;

/** `MERCHANT_WEBHOOK_ALLOWED_HOSTS`: comma-separated host names, addresses or CIDR blocks. */
function allowedHosts(read: Reader): AllowedEntry[] {
  const value = read.raw('MERCHANT_WEBHOOK_ALLOWED_HOSTS');
  if (value === undefined) return [];
  const items = value.split(',').map((item) => item.trim());
  const entries = items.map(allowedEntry);
  if (items.length > allowedHostsMax || entries.some((entry) => entry === undefined)) {
    read.problems.push(
      `MERCHANT_WEBHOOK_ALLOWED_HOSTS: must be up to ${allowedHostsMax} comma-separated host names, IP addresses or CIDR blocks (127.0.0.1, 10.0.0.0/8, ::1, hooks.internal), got "${value}"`,
    );
    return [];
  }
  return entries as AllowedEntry[];
}

function oncallConfig(read: Reader): OncallConfig {
  const [open, shut] = read.minuteRange('ONCALL_BUSINESS_HOURS', [9 * 60, 17 * 60]);
  return {
    timeZone: read.timeZone('ONCALL_TIME_ZONE', 'UTC'),
    businessDays: read.weekdays('ONCALL_BUSINESS_DAYS', weekdays.slice(0, 5)),
    businessOpenMinute: open,
    businessShutMinute: shut,
  };
}

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const read = new Reader(env);
  const config: Config = {
    host: read.raw('HOST') ?? '127.0.0.1',
    port: read.integer('PORT', 8080, 0, portMax),
    dataDir: resolve(cwd, read.raw('SETTLEDESK_DATA_DIR') ?? '.settledesk'),
    databaseUrl: read.postgresUrl('DATABASE_URL'),
    databasePoolMax: read.integer('DATABASE_POOL_MAX', 10, 1, 200),
    logLevel: read.oneOf('LOG_LEVEL', logLevels, 'info'),
    redisUrl: read.redisUrl('REDIS_URL'),
    rateLimits: {
      windowMs: read.integer('RATE_LIMIT_WINDOW_MS', 60_000, 1_000, 3_600_000),
      callerMax: read.integer('RATE_LIMIT_CALLER_MAX', 1_200, 1, rateLimitMax),
      addressMax: read.integer('RATE_LIMIT_ADDRESS_MAX', 300, 1, rateLimitMax),
      redisPrefix: redisPrefix(read),
    },
    keyringKeyBase64: read.base64Key('SETTLEDESK_KEYRING_KEY', keyringKeyBytes),
    keyringPreviousKeysBase64: read.base64Keys(
      'SETTLEDESK_KEYRING_PREVIOUS_KEYS',
      keyringKeyBytes,
      keyringPreviousKeysMax,
    ),
    accessReloadMs: read.integer('ACCESS_RELOAD_MS', 2_000, 100, 60_000),
    statusProbeIntervalMs: read.integer('STATUS_PROBE_INTERVAL_MS', 10_000, 100, 300_000),
    workerMetricsPort: read.integer('WORKER_METRICS_PORT', 9464, 0, 65_535),
    tokenTtlSecondsDefault: read.integer('TOKEN_TTL_SECONDS', 3_600, 1, 86_400),
    tokenTtlSecondsMax: read.integer('TOKEN_TTL_SECONDS_MAX', 86_400, 1, 31 * 86_400),
    workerEnabled: read.boolean('SETTLEDESK_WORKER', true),
    workerConcurrency: read.integer('WORKER_CONCURRENCY', 4, 1, 64),
    workerPollIntervalMs: read.integer('WORKER_POLL_INTERVAL_MS', 1_000, 10, 60_000),
    idempotencyRetentionSeconds: read.integer('IDEMPOTENCY_RETENTION_SECONDS', 86_400, 86_400, 30 * 86_400),
    approvalTtlSecondsDefault: read.integer('APPROVAL_TTL_SECONDS', 3_600, 60, 7 * 86_400),
    approvalTtlSecondsMax: read.integer('APPROVAL_TTL_SECONDS_MAX', 86_400, 60, 7 * 86_400),
    shutdownTimeoutMs: read.integer('SHUTDOWN_TIMEOUT_MS', 8_000, 100, 120_000),
    requestBodyBytesMax: read.integer('REQUEST_BODY_BYTES_MAX', 1_048_576, 1_024, 16_777_216),
    stellar: {
      network: read.oneOf('STELLAR_NETWORK', stellarNetworks, 'sandbox'),
      horizonUrls: read.httpUrls('STELLAR_HORIZON_URLS'),
      rpcUrl: read.httpUrls('STELLAR_RPC_URL')?.[0],
      networkPassphrase: read.raw('STELLAR_NETWORK_PASSPHRASE'),
    },
    sandbox: {
      port: read.integer('SANDBOX_PORT', 8000, 0, portMax),
      horizonListeners: read.integer('SANDBOX_HORIZON_LISTENERS', 2, 1, stellarUrlsMax),
      ledgerCloseMs: read.integer('SANDBOX_LEDGER_CLOSE_MS', 5_000, 20, 60_000),
    },
    payouts: {
      hotWalletSecret: read.stellarSecrets('STELLAR_HOT_WALLET_SECRET')?.[0],
      channelSecrets: read.stellarSecrets('STELLAR_CHANNEL_SECRETS'),
      channelCount: read.integer('PAYOUT_CHANNELS', 4, 1, channelsMax),
      batchSizeMax: read.integer('PAYOUT_BATCH_SIZE_MAX', 100, 1, 100),
      feeCapStroops: BigInt(read.integer('PAYOUT_FEE_CAP_STROOPS', 10_000, 100, 10_000_000)),
      windowSeconds: read.integer('PAYOUT_WINDOW_SECONDS', 120, 2, 3_600),
      windowLedgers: read.integer('PAYOUT_WINDOW_LEDGERS', 20, 2, 1_000),
      resubmitAfterMs: read.integer('PAYOUT_RESUBMIT_AFTER_MS', 10_000, 100, 600_000),
      manualReviewAfterMs: read.integer('PAYOUT_MANUAL_REVIEW_AFTER_MS', 900_000, 100, 86_400_000),
      pollMs: read.integer('PAYOUT_POLL_MS', 1_000, 10, 60_000),
      approvalThresholds: read.assetAmounts('PAYOUT_APPROVAL_THRESHOLDS'),
      approvalDailyTotals: read.assetAmounts('PAYOUT_APPROVAL_DAILY_TOTALS'),
    },
    deposits: {
      webhookSecrets: read.secretsByName('DEPOSIT_WEBHOOK_SECRET_', webhookSecretLengthMin),
      webhookToleranceSeconds: read.integer('WEBHOOK_TOLERANCE_SECONDS', 300, 10, 3_600),
      watcherPollMs: read.integer('DEPOSIT_WATCHER_POLL_MS', 1_000, 10, 60_000),
    },
    merchantWebhooks: {
      attemptsMax: read.integer('MERCHANT_WEBHOOK_ATTEMPTS_MAX', 8, 1, 50),
      timeoutMs: read.integer('MERCHANT_WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
      backoffBaseMs: read.integer('MERCHANT_WEBHOOK_BACKOFF_BASE_MS', 10_000, 10, 3_600_000),
      backoffCapMs: read.integer('MERCHANT_WEBHOOK_BACKOFF_CAP_MS', 28_800_000, 10, 86_400_000),
      allowHttp: read.boolean('MERCHANT_WEBHOOK_ALLOW_HTTP', false),
      allowedHosts: allowedHosts(read),
    },
    incidentWebhook: incidentWebhookConfig(read),
    reconciliation: {
      stuckAfterSeconds: read.integer('RECONCILIATION_STUCK_AFTER_SECONDS', 1_800, 10, 604_800),
      stuckReleaseAfterSeconds: read.integer(
        'RECONCILIATION_STUCK_RELEASE_AFTER_SECONDS',
        1_800,
        10,
        604_800,
      ),
      streamRunStuckAfterSeconds: read.integer('STREAM_RUN_STUCK_AFTER_SECONDS', 900, 10, 86_400),
      streamOverdueAfterSeconds: read.integer('STREAM_SETTLEMENT_OVERDUE_AFTER_SECONDS', 900, 10, 604_800),
      chainDriftToleranceStroops: BigInt(
        read.integer('RECONCILIATION_CHAIN_DRIFT_TOLERANCE_STROOPS', 100_000, 0, 1_000_000_000),
      ),
      chainDriftGraceSeconds: read.integer('RECONCILIATION_CHAIN_DRIFT_GRACE_SECONDS', 300, 0, 86_400),
      payoutVolumeFactor: read.integer('RECONCILIATION_PAYOUT_VOLUME_FACTOR', 5, 2, 1_000),
      payoutVolumeDailyTotals: read.assetAmounts('RECONCILIATION_PAYOUT_VOLUME_DAILY_TOTALS'),
    },
    oncall: oncallConfig(read),
    loops: {
      staleSecondsMin: read.integer('LOOP_STALE_SECONDS_MIN', loopStaleSecondsMinDefault, 1, 3_600),
      reportIntervalMs: read.integer('LOOP_REPORT_INTERVAL_MS', 10_000, 1_000, 60_000),
    },
    communications: {
      redactionNames: redactionNames(read, cwd),
      statusComponents: statusComponents(read),
    },
    alertmanager: {
      webhookTokens: read.bearerSecrets('ALERTMANAGER_WEBHOOK_TOKEN', alertmanagerTokenLengthMin),
      severityMap: read.severityMap('ALERTMANAGER_SEVERITY_MAP', severityMapDefault),
    },
  };
  if (config.stellar.rpcUrl !== undefined && config.stellar.horizonUrls === undefined) {
    read.problems.push('STELLAR_RPC_URL: set STELLAR_HORIZON_URLS too (an RPC URL alone is not a network)');
  }
  const ownHorizon = config.stellar.horizonUrls !== undefined;
  if (config.stellar.network !== 'sandbox' && ownHorizon && config.stellar.rpcUrl === undefined) {
    read.problems.push('STELLAR_RPC_URL: required with STELLAR_HORIZON_URLS outside the sandbox');
  }
  if (config.tokenTtlSecondsDefault > config.tokenTtlSecondsMax) {
    read.problems.push('TOKEN_TTL_SECONDS: must not exceed TOKEN_TTL_SECONDS_MAX');
  }
  if (config.approvalTtlSecondsDefault > config.approvalTtlSecondsMax) {
    read.problems.push('APPROVAL_TTL_SECONDS: must not exceed APPROVAL_TTL_SECONDS_MAX');
  }
  if (config.merchantWebhooks.backoffBaseMs > config.merchantWebhooks.backoffCapMs) {
    read.problems.push('MERCHANT_WEBHOOK_BACKOFF_BASE_MS: must not exceed MERCHANT_WEBHOOK_BACKOFF_CAP_MS');
  }
  // Triage reads a loop's last success as last written, up to one report late: a floor under two
  // reports would call healthy loops stale.
  if (config.loops.staleSecondsMin * 1_000 < 2 * config.loops.reportIntervalMs) {
    read.problems.push('LOOP_STALE_SECONDS_MIN: must be at least two LOOP_REPORT_INTERVAL_MS');
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return config;
}
