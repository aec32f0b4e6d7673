import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { DrillContext } from '../../src/drills/harness.ts';
import {
  alertmanager,
  type LocatedTool,
  locateTool,
  prometheusServer,
  toolEnv,
} from '../../src/drills/tools.ts';
import { freePort } from '../../src/platform/db/embedded.ts';
import { alertsFile, opsDir } from './promtool.ts';

/**
 * Debian's Prometheus and Alertmanager around a running settledesk, for the Alertmanager
 * end-to-end test: Prometheus scrapes settledesk with the shipped alerts.yml, Alertmanager routes
 * with the shipped alertmanager.yml, rewritten only where a test must (the URL of settledesk, the
 * credentials, the timers), and a capture receiver beside settledesk's webhook records the exact
 * bodies Alertmanager sent. Every process is stopped when the drill context cleans up.
 */

export const alertmanagerFile = join(opsDir, 'alertmanager', 'alertmanager.yml');
/** The receiver of the shipped routing tree that calls settledesk. */
export const settledeskReceiver = 'settledesk-incidents';
const readyMsMax = 30_000;
const stopMsMax = 10_000;
const logTailBytesMax = 4_096;
/** Short enough that a notification follows its alert within seconds. */
export const testTimers = {
  scrapeInterval: '1s',
  evaluationInterval: '1s',
  groupWait: '1s',
  groupInterval: '1s',
  repeatInterval: '5s',
  resolveTimeout: '10s',
};

type WebhookConfig = {
  url: string;
  send_resolved?: boolean;
  max_alerts?: number;
  http_config?: { authorization?: { type?: string; credentials?: string; credentials_file?: string } };
};
type Receiver = { name: string; webhook_configs?: WebhookConfig[] };
export type AlertmanagerConfigFile = {
  global?: Record<string, unknown>;
  route: Record<string, unknown>;
  receivers: Receiver[];
  inhibit_rules?: unknown[];
};

export type Captured = { receivedAt: number; body: string };

/**
 * How much faster than the shipped rules' clock the test runs them. Prometheus has no simulated
 * time, and the shipped windows are minutes long (LedgerImbalance holds 5 minutes after the last
 * count): every duration of every rule (range windows, subquery steps, offsets, `for`) is divided
 * by this, so the rules keep their shape and their proportions to each other; the smallest
 * window, 5 minutes, becomes 15 s, still 15 scrapes at the test's 1 s interval.
 */
export const ruleTimeFactor = 20;

const durationUnitsMs: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};
const durationPattern = /^(?:\d+(?:ms|s|m|h|d|w|y))+$/;

function compressDuration(text: string): string {
  if (!durationPattern.test(text)) throw new Error(`not a Prometheus duration: ${text}`);
  let ms = 0;
  for (const [, count, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) {
    ms += Number(count) * (durationUnitsMs[unit ?? ''] ?? Number.NaN);
  }
  return `${Math.round(ms / ruleTimeFactor)}ms`;
}

/** An expression with its range windows, subquery steps and offsets divided by ruleTimeFactor. */
export function compressExpression(expr: string): string {
  return expr
    .replace(/\[([0-9a-z]+)(?::([0-9a-z]*))?\]/g, (_match, range: string, step: string | undefined) =>
      step === undefined
        ? `[${compressDuration(range)}]`
        : `[${compressDuration(range)}:${step === '' ? '' : compressDuration(step)}]`,
    )
    .replace(/\boffset\s+([0-9a-z]+)/g, (_match, offset: string) => `offset ${compressDuration(offset)}`);
}

type RuleFile = { groups: { name: string; rules: Record<string, unknown>[] }[] };

/** The shipped rules file with every duration compressed; nothing else changes. */
export function compressRules(shipped: RuleFile): RuleFile {
  return {
    groups: shipped.groups.map((group) => ({
      ...group,
      rules: group.rules.map((rule) => ({
        ...rule,
        expr: compressExpression(String(rule.expr)),
        ...(rule.for === undefined ? {} : { for: compressDuration(String(rule.for)) }),
      })),
    })),
  };
}

export type PrometheusStack = {
  prometheusUrl: string;
  alertmanagerUrl: string;
  /** Every notification body Alertmanager sent settledesk's receiver, in the order received. */
  captured: Captured[];
  shipped: AlertmanagerConfigFile;
  rewritten: AlertmanagerConfigFile;
  /** Stops Alertmanager and Prometheus now (also done at cleanup). */
  stop(): Promise<void>;
};

/** Both binaries, found on this machine or unpacked from Debian's packages. */
export async function locateStack(): Promise<LocatedTool[]> {
  return Promise.all([locateTool(prometheusServer), locateTool(alertmanager)]);
}

/**
 * The shipped configuration with settledesk's webhook pointed at `settledeskUrl` carrying
 * `tokenFile`, a second webhook (the capture receiver) in the same receiver, so it gets the same
 * notifications, and the test's timers. Nothing else changes.
 */
export function rewriteAlertmanagerConfig(
  shipped: AlertmanagerConfigFile,
  settledeskUrl: string,
  tokenFile: string,
  captureUrl: string,
): AlertmanagerConfigFile {
  const copy = structuredClone(shipped);
  const receiver = copy.receivers.find((candidate) => candidate.name === settledeskReceiver);
  const webhook = receiver?.webhook_configs?.[0];
  if (!receiver || !webhook || receiver.webhook_configs?.length !== 1)
    throw new Error(`${alertmanagerFile} has no receiver ${settledeskReceiver} with one webhook`);
  webhook.url = `${settledeskUrl}/internal/alertmanager`;
  webhook.http_config = { authorization: { type: 'Bearer', credentials_file: tokenFile } };
  receiver.webhook_configs.push({ ...structuredClone(webhook), url: captureUrl, http_config: {} });
  copy.global = { ...copy.global, resolve_timeout: testTimers.resolveTimeout };
  copy.route = {
    ...copy.route,
    group_wait: testTimers.groupWait,
    group_interval: testTimers.groupInterval,
    repeat_interval: testTimers.repeatInterval,
  };
  return copy;
}

/** Where Debian's Alertmanager reads its default notification templates; the path is built in. */
const debianTemplateDir = '/usr/share/prometheus/alertmanager';
/** The same folder relative to an unpacked package tree, padded with a second slash to equal length. */
const unpackedTemplateDir = 'usr/share/prometheus//alertmanager';

/**
 * How to run Alertmanager. Debian's build reads default.tmpl from a fixed absolute folder and
 * refuses to start without it; a package unpacked by locateTool (no root, nothing installed) has
 * that folder inside its tree instead. Then a copy of the binary in `dir`, with that one path made
 * relative (the same length, so the Go string stays intact), runs from the tree's root.
 */
async function alertmanagerCommand(
  tool: LocatedTool,
  dir: string,
): Promise<{ binary: string; cwd?: string }> {
  const installed = join(tool.binDir, 'prometheus-alertmanager');
  if (tool.source !== 'cache' || existsSync(join(debianTemplateDir, 'default.tmpl')))
    return { binary: installed };
  const root = dirname(dirname(tool.binDir));
  if (!existsSync(join(root, unpackedTemplateDir, 'default.tmpl')))
    throw new Error(`the unpacked Alertmanager in ${root} has no ${unpackedTemplateDir}/default.tmpl`);
  const original = await readFile(installed);
  const from = Buffer.from(debianTemplateDir);
  const to = Buffer.from(unpackedTemplateDir);
  if (original.indexOf(from) === -1) return { binary: installed };
  let patched = original.toString('latin1');
  patched = patched.replaceAll(from.toString('latin1'), to.toString('latin1'));
  const binary = join(dir, 'prometheus-alertmanager');
  await writeFile(binary, Buffer.from(patched, 'latin1'));
  await chmod(binary, 0o755);
  return { binary, cwd: root };
}

/** A receiver on 127.0.0.1 that answers 200 and keeps every body. */
async function startCapture(context: DrillContext, captured: Captured[]): Promise<string> {
  const port = await freePort();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      captured.push({ receivedAt: Date.now(), body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  context.defer('close the capture receiver', () => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${port}/`;
}

/** Spawns a server in its own process group, logging to the drill folder; stopped at cleanup. */
function startProcess(
  context: DrillContext,
  tool: LocatedTool,
  command: { binary: string; cwd?: string },
  args: string[],
): () => Promise<void> {
  const name = tool.name;
  const log = createWriteStream(join(context.dir, `${name}.log`));
  const child = spawn(command.binary, args, {
    env: { ...process.env, ...toolEnv([tool]) },
    cwd: command.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let recent = '';
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk: Buffer) => {
      log.write(chunk);
      recent = (recent + chunk.toString('utf8')).slice(-logTailBytesMax);
    });
  }
  let stopping: Promise<void> | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code, signal) => {
      // Its log goes with the drill folder: an unexpected exit is told with its last lines.
      if (stopping === undefined) context.note(`${name} exited (${code ?? signal}):\n${recent}`);
      resolve();
    }),
  );
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(-child.pid, 'SIGTERM');
        const timer = setTimeout(() => child.pid && process.kill(-child.pid, 'SIGKILL'), stopMsMax);
        await exited;
        clearTimeout(timer);
      }
    })();
    return stopping;
  };
  context.defer(`stop ${name} (pid ${child.pid})`, stop);
  return stop;
}

async function waitReady(context: DrillContext, what: string, url: string): Promise<void> {
  await context.waitFor(
    `${what} to be ready at ${url}`,
    async () => {
      const response = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return response.status === 200 ? true : undefined;
    },
    readyMsMax,
  );
}

/**
 * Starts Alertmanager (the shipped routing, rewritten for the test) and Prometheus (the shipped
 * alerts, scraping settledesk's /metrics every second), and waits until both are ready.
 */
export async function startPrometheusStack(
  context: DrillContext,
  settledesk: { url: string; port: number },
  token: string,
): Promise<PrometheusStack> {
  const [prometheusTool, alertmanagerTool] = await locateStack();
  if (!prometheusTool || !alertmanagerTool) throw new Error('locateStack returned fewer tools');
  const dir = join(context.dir, 'prometheus-stack');
  await mkdir(dir, { recursive: true });
  const tokenFile = join(dir, 'settledesk-webhook-token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const captured: Captured[] = [];
  const captureUrl = await startCapture(context, captured);
  const shipped = parse(await readFile(alertmanagerFile, 'utf8')) as AlertmanagerConfigFile;
  const rewritten = rewriteAlertmanagerConfig(shipped, settledesk.url, tokenFile, captureUrl);
  await writeFile(join(dir, 'alertmanager.yml'), stringify(rewritten));

  const alertmanagerPort = await freePort();
  const alertmanagerUrl = `http://127.0.0.1:${alertmanagerPort}`;
  const command = await alertmanagerCommand(alertmanagerTool, dir);
  const stopAlertmanager = startProcess(context, alertmanagerTool, command, [
    `--config.file=${join(dir, 'alertmanager.yml')}`,
    `--storage.path=${join(dir, 'alertmanager-data')}`,
    `--web.listen-address=127.0.0.1:${alertmanagerPort}`,
    // A single instance: no gossip port to claim.
    '--cluster.listen-address=',
  ]);
  await waitReady(context, 'Alertmanager', alertmanagerUrl);

  const rulesFile = join(dir, 'alerts.compressed.yml');
  await writeFile(rulesFile, stringify(compressRules(parse(await readFile(alertsFile, 'utf8')) as RuleFile)));
  const prometheusConfig = {
    global: {
      scrape_interval: testTimers.scrapeInterval,
      evaluation_interval: testTimers.evaluationInterval,
    },
    rule_files: [rulesFile],
    alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${alertmanagerPort}`] }] }] },
    scrape_configs: [
      {
        job_name: 'settledesk',
        metrics_path: '/metrics',
        static_configs: [{ targets: [`127.0.0.1:${settledesk.port}`] }],
      },
    ],
  };
  await writeFile(join(dir, 'prometheus.yml'), stringify(prometheusConfig));
  const prometheusPort = await freePort();
  const prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
  const stopPrometheus = startProcess(
    context,
    prometheusTool,
    { binary: join(prometheusTool.binDir, 'prometheus') },
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${prometheusPort}`,
      // Alerts go to Alertmanager as soon as they change, not once a minute.
      '--rules.alert.resend-delay=1s',
    ],
  );
  await waitReady(context, 'Prometheus', prometheusUrl);
  return {
    prometheusUrl,
    alertmanagerUrl,
    captured,
    shipped,
    rewritten,
    stop: async () => {
      await stopPrometheus();
      await stopAlertmanager();
    },
  };
}
