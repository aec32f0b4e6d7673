import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Keypair } from '@stellar/stellar-sdk';
import { decodeProtectedHeader } from 'jose';
import { selectProposalPage } from '../approvals/data.ts';
import { selectControls } from '../controls/data.ts';
import { Keyring } from '../platform/auth/keyring.ts';
import { type KeyState, selectAllKeys } from '../platform/auth/keyring-data.ts';
import { issueToken } from '../platform/auth/tokens.ts';
import type { Sql } from '../platform/db/types.ts';
import { findRunningSandbox } from '../sandbox/ownership.ts';
import { type Drill, type DrillContext, DrillFailure, type ServiceProcess } from './harness.ts';
import { drillDatabase, issueToken as issueCliToken, openSql } from './support.ts';

/** Short enough to keep the drill fast, long enough that a pass does not hinge on it: NOTIFY wins. */
const accessReloadMs = 1_000;
/**
 * The promise is "refused on every instance within the reload bound": a missed NOTIFY is covered
 * by the next periodic reload (`accessReloadMs`); the slack is for that reload's query on a busy
 * machine.
 */
const refusalBoundMs = accessReloadMs + 2_000;
const channelsCount = 2;
const requestTimeoutMs = 5_000;
/** Every role may read the payout list, so one probe serves viewer, admin and service tokens. */
const probePath = '/v1/payouts?limit=1';

/**
 * docs/runbooks/jwt-secret-rotation.md against two `settledesk serve` instances on one database
 * (one keyring key, one hot wallet; only the first runs the sandbox and the job worker, the second
 * talks to that sandbox): a planned rotation with the runbook's cells, in which tokens signed with
 * the old key keep working on both instances and new tokens carry the new kid; then a leak, in
 * which a token forged with the leaked secret works until the runbook's cells add, promote and
 * retire keys, after which every token signed with a retired key is refused on both instances
 * within the reload bound while new tokens work, with neither instance restarted.
 */
export const jwtKeyRotationDrill: Drill = {
  name: 'jwt-key-rotation',
  runbook: 'jwt-secret-rotation.md',
  description:
    'rotate the JWT signing key across two instances with the runbook, then retire a leaked key: ' +
    'old tokens keep working until retirement, then get 401 on both instances; no restart',
  run: async (context) => {
    const databaseUrl = await context.step('create a database for the drill', () => drillDatabase(context));
    const wallet = Keypair.random();
    const shared = {
      DATABASE_URL: databaseUrl,
      SETTLEDESK_KEYRING_KEY: randomBytes(32).toString('base64'),
      ACCESS_RELOAD_MS: String(accessReloadMs),
      STELLAR_HOT_WALLET_SECRET: wallet.secret(),
      STELLAR_CHANNEL_SECRETS: Array.from({ length: channelsCount }, () => Keypair.random().secret()).join(
        ',',
      ),
    };
    const dataDirFirst = join(context.dir, 'instance-1');
    const first = await context.step('start instance 1: API, job worker and the sandbox network', () =>
      context.startService({
        ...shared,
        SETTLEDESK_DATA_DIR: dataDirFirst,
        SANDBOX_PORT: '0',
        SANDBOX_LEDGER_CLOSE_MS: '200',
        LOG_LEVEL: 'info',
      }),
    );
    const second = await context.step(
      "start instance 2: API only, on the same database and instance 1's sandbox",
      async () => {
        const sandbox = await findRunningSandbox(join(dataDirFirst, 'sandbox'));
        if (sandbox === undefined) throw context.fail('instance 1 published no sandbox address');
        return context.startService({
          ...shared,
          SETTLEDESK_DATA_DIR: join(context.dir, 'instance-2'),
          SETTLEDESK_WORKER: 'false',
          STELLAR_HORIZON_URLS: sandbox.horizonUrls.join(','),
          STELLAR_RPC_URL: sandbox.rpcUrl,
          LOG_LEVEL: 'info',
        });
      },
    );
    const instances = [first, second] as const;
    context.note(
      `instance 1: pid ${first.pid} on ${first.url}; instance 2: pid ${second.pid} on ${second.url}`,
    );
    Object.assign(context.env, {
      ...shared,
      SETTLEDESK_DATA_DIR: dataDirFirst,
      SETTLEDESK_URL: first.url,
      SETTLEDESK_OPERATOR: 'drill-security-lead',
      LOG_FILE: first.logFile,
      LOG_LEVEL: undefined,
    });
    const sql = openSql(databaseUrl);
    context.defer('close the drill database pool', () => sql.end({ timeout: 5 }));
    const balancesBefore = await accountBalances(sql);

    const original = await context.step('a client holds a token signed with the first key', async () => {
      const [key] = await keysIn(sql, 'current');
      if (key === undefined) throw context.fail('no current signing key after the first start');
      const token = await issueCliToken(context, context.env, 'drill-client', 'viewer');
      if (token.kid !== key)
        throw context.fail(`token issue signed with ${token.kid}, not the current ${key}`);
      await expectStatuses(instances, token.token, 200, 'a token signed with the first key');
      return { kid: key, token: token.token };
    });

    // Planned rotation.
    const added = await context.step(
      'runbook (planned): add a key; the old token keeps working',
      async () => {
        await context.cells(['show-keyring', 'add-signing-key'], { yes: true });
        return context.expectAfter('add-signing-key', 'the new key is not verify_only', async () => {
          const [kid] = await keysIn(sql, 'verify_only');
          if (kid === undefined) throw new Error('no verify_only key in signing_keys');
          await expectStatuses(instances, original.token, 200, 'the old token after add');
          return kid;
        });
      },
    );
    const rotated = await context.step(
      'runbook (planned): promote it; new tokens carry its kid, both kinds work on both instances',
      async () => {
        await context.cells(['promote-new-key'], { yes: true });
        const token = await context.expectAfter(
          'promote-new-key',
          'the added key is not current',
          async () => {
            const issued = await issueCliToken(context, context.env, 'drill-client', 'viewer');
            const kid = decodeProtectedHeader(issued.token).kid;
            if (kid !== added || issued.kid !== added)
              throw new Error(`a new token carries kid ${kid}, not the promoted ${added}`);
            const oldState = await stateOf(sql, original.kid);
            if (oldState !== 'verify_only') throw new Error(`the old key is ${oldState}, not verify_only`);
            return issued.token;
          },
        );
        // add-signing-key waits until every instance has loaded the key before it is promoted.
        await context.expectAfter('add-signing-key', 'an instance refuses the promoted key', () =>
          expectStatuses(instances, token, 200, 'a token signed with the promoted key'),
        );
        await expectStatuses(instances, original.token, 200, 'the old token after promotion');
        for (const instance of instances) {
          context.env.SETTLEDESK_URL = instance.url;
          await context.cells(['check-current-key-accepted']);
        }
        context.env.SETTLEDESK_URL = first.url;
        return { kid: added, token };
      },
    );
    await context.step('runbook (planned): the keyring history shows the rotation', async () => {
      const [history] = await context.cells(['show-keyring-history']);
      for (const action of ['keys.added', 'keys.promoted'])
        if (!history?.stdout.includes(action) || !history.stdout.includes(rotated.kid))
          throw cellFailure(context, 'show-keyring-history', `shows no ${action} row for ${rotated.kid}`);
    });
    await context.step(
      'runbook (planned): the old key may not be retired while its tokens can be valid',
      () =>
        context.cellReports(
          'check-old-tokens-expired',
          'tokens signed with the previous key may still be valid',
        ),
    );
    expectAlive(context, instances);

    // The leak: someone holding a database copy and the keyring key signs tokens of their own.
    const forged = await context.step('leak: a token forged with the leaked secret is accepted', async () => {
      const leaked = new Keyring(Buffer.from(shared.SETTLEDESK_KEYRING_KEY, 'base64'));
      await leaked.reload(sql);
      const token = await issueToken(leaked, { subject: 'not-a-person', role: 'admin', ttlSeconds: 3_600 });
      await expectStatuses(instances, token, 200, 'the forged admin token before mitigation');
      return token;
    });
    const refusedBefore = await Promise.all(instances.map(refusedCount));
    context.env.LEAK_SINCE = new Date(Date.now() - 60_000).toISOString();
    const retiredAt = await context.step(
      'runbook (leak): freeze, read-only, add, promote, retire every older key',
      async () => {
        await context.cells(
          ['freeze-payouts', 'enter-read-only', 'add-signing-key', 'promote-new-key', 'retire-previous-keys'],
          { yes: true },
        );
        const at = performance.now();
        const brakes = await selectControls(sql);
        if (!brakes.payoutsFrozen) throw cellFailure(context, 'freeze-payouts', 'payouts are not frozen');
        if (brakes.paymentsMode !== 'read_only')
          throw cellFailure(context, 'enter-read-only', `payments mode is ${brakes.paymentsMode}`);
        return at;
      },
    );
    const refusedMs = await context.step(
      `every token signed with a retired key gets 401 on both instances within ${refusalBoundMs} ms`,
      () =>
        context.expectAfter(
          'retire-previous-keys',
          'tokens signed with the retired keys are still accepted',
          async () => {
            for (const kid of [original.kid, rotated.kid]) {
              const state = await stateOf(sql, kid);
              if (state !== 'retired') throw new Error(`key ${kid} is ${state}, not retired`);
            }
            await context.waitFor(
              'the old, the rotated and the forged tokens to be refused on both instances',
              async () => {
                for (const token of [original.token, rotated.token, forged]) {
                  const answers = await statuses(instances, token);
                  if (answers.some((status) => status !== 401)) return undefined;
                }
                return true;
              },
              refusalBoundMs,
            );
            return Math.round(performance.now() - retiredAt);
          },
        ),
    );
    context.figure(
      'retirementToRefusedMs',
      refusedMs,
      `retired keys' tokens refused on both instances ${refusedMs} ms after retire-previous-keys finished`,
    );
    const current = await context.step(
      'new tokens, signed with the newest key, work on both instances',
      async () => {
        const [kid] = await keysIn(sql, 'current');
        if (kid === undefined || kid === rotated.kid || kid === original.kid)
          throw cellFailure(context, 'promote-new-key', `the current key is ${kid}, not a new one`);
        for (const instance of instances) {
          context.env.SETTLEDESK_URL = instance.url;
          await context.cells(['check-current-key-accepted']);
        }
        context.env.SETTLEDESK_URL = first.url;
        Object.assign(context.env, { TOKEN_SUBJECT: 'drill-payments-api', TOKEN_ROLE: 'service' });
        const [issued] = await context.cells(['issue-service-token'], { yes: true });
        const token = issued?.stdout.trim() ?? '';
        await context.expectAfter(
          'issue-service-token',
          'the service token is not signed with the new key',
          async () => {
            const header = decodeProtectedHeader(token);
            if (header.kid !== kid) throw new Error(`it carries kid ${header.kid}, not ${kid}`);
          },
        );
        await expectStatuses(instances, token, 200, 'the re-issued service token');
        return kid;
      },
    );

    await context.step('detection: 401s counted on both instances and found in the logs', async () => {
      const refusedAfter = await Promise.all(instances.map(refusedCount));
      instances.forEach((instance, index) => {
        const before = refusedBefore[index] ?? 0;
        const after = refusedAfter[index] ?? 0;
        if (after <= before)
          throw context.fail(
            `http_request_duration_seconds_count{status="401"} on ${instance.url} did not rise (${before} → ${after})`,
          );
      });
      context.note(`401s counted: ${refusedBefore.join(', ')} → ${refusedAfter.join(', ')}`);
      for (const instance of instances) {
        context.env.LOG_FILE = instance.logFile;
        const [search] = await context.cells(['search-logs-auth']);
        if (!search?.stdout.includes('requestId'))
          throw cellFailure(context, 'search-logs-auth', `finds no refused request in ${instance.logFile}`);
      }
      context.env.LOG_FILE = first.logFile;
    });
    await context.step(
      'runbook (leak): the audit log shows every key change and brake, and is intact',
      async () => {
        const [history, sinceLeak] = await context.cells([
          'show-keyring-history',
          'audit-since-leak',
          'verify-audit-log',
        ]);
        for (const kid of [original.kid, rotated.kid])
          if (!history?.stdout.includes(kid))
            throw cellFailure(context, 'show-keyring-history', `shows no row for the retired key ${kid}`);
        for (const action of [
          'controls.freeze_payouts',
          'controls.read_only',
          'keys.promoted',
          'keys.retired',
        ])
          if (!sinceLeak?.stdout.includes(action))
            throw cellFailure(context, 'audit-since-leak', `lists no ${action} since LEAK_SINCE`);
      },
    );

    await context.step('runbook (leak): lift the brakes with two admins', async () => {
      context.env.SETTLEDESK_OPERATOR = 'drill-admin-alice';
      await context.cells(['propose-release'], { yes: true });
      const proposals = await selectProposalPage(sql, {
        state: 'pending',
        afterCreatedAt: undefined,
        afterId: undefined,
        limit: 10,
      });
      if (proposals.length !== 2)
        throw cellFailure(context, 'propose-release', `left ${proposals.length} pending proposals, not 2`);
      const modes = await selectControls(sql);
      if (modes.paymentsMode !== 'read_only' || !modes.payoutsFrozen)
        throw context.fail('the brakes came off before a second admin approved');
      context.env.SETTLEDESK_OPERATOR = 'drill-admin-bob';
      for (const proposal of proposals) {
        Object.assign(context.env, { PROPOSAL_ID: proposal.id, PAYLOAD_HASH: proposal.payloadHash });
        await context.cells(['approve-release'], { yes: true });
      }
      await context.expectAfter('approve-release', 'the brakes are still on', async () => {
        const after = await selectControls(sql);
        if (after.paymentsMode !== 'standard' || after.payoutsFrozen)
          throw new Error(`payments ${after.paymentsMode}, payouts frozen: ${after.payoutsFrozen}`);
      });
    });

    await context.step('money: the ledger is balanced and no balance moved', async () => {
      const check = await context.cli(['--json', 'ledger', 'check'], context.env);
      if (check.code !== 0)
        throw context.fail(`settledesk ledger check exited ${check.code}: ${check.stderr}`);
      const after = await accountBalances(sql);
      if (JSON.stringify(after) !== JSON.stringify(balancesBefore))
        throw context.fail('account balances changed during the drill, though nothing moved money');
    });
    await context.step('neither instance was restarted', async () => {
      expectAlive(context, instances);
      context.note(
        `pids ${first.pid} and ${second.pid} served from the first key to ${current}, through 2 promotions and 2 retirements`,
      );
    });
  },
};

/** A cell that exited 0 but did not do what its text says. */
function cellFailure(context: DrillContext, cell: string, detail: string): DrillFailure {
  return new DrillFailure(context.runbookPath, cell, detail);
}

function expectAlive(context: DrillContext, instances: readonly ServiceProcess[]): void {
  for (const instance of instances)
    if (!instance.alive()) throw context.fail(`settledesk serve pid ${instance.pid} is no longer running`);
}

async function statuses(instances: readonly ServiceProcess[], token: string): Promise<number[]> {
  return Promise.all(
    instances.map(async (instance) => {
      const response = await fetch(`${instance.url}${probePath}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      await response.body?.cancel();
      return response.status;
    }),
  );
}

/** Throws a plain error: inside `expectAfter` it blames the cell, elsewhere the step. */
async function expectStatuses(
  instances: readonly ServiceProcess[],
  token: string,
  expected: number,
  what: string,
): Promise<void> {
  const answers = await statuses(instances, token);
  if (answers.some((status) => status !== expected))
    throw new Error(
      `${what}: GET ${probePath} answered ${answers.join(' and ')}, not ${expected} on both instances`,
    );
}

/** The sum of `http_request_duration_seconds_count{status="401"}` over every method and path. */
async function refusedCount(instance: ServiceProcess): Promise<number> {
  const response = await fetch(`${instance.url}/metrics`, { signal: AbortSignal.timeout(requestTimeoutMs) });
  let total = 0;
  for (const line of (await response.text()).split('\n'))
    if (line.startsWith('http_request_duration_seconds_count{') && line.includes('status="401"'))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

/** Newest first. */
async function keysIn(sql: Sql, state: KeyState): Promise<string[]> {
  const keys = await selectAllKeys(sql);
  return keys
    .filter((key) => key.state === state)
    .reverse()
    .map((key) => key.kid);
}

async function stateOf(sql: Sql, kid: string): Promise<KeyState | undefined> {
  return (await selectAllKeys(sql)).find((key) => key.kid === kid)?.state;
}

async function accountBalances(sql: Sql): Promise<{ id: string; balance: string }[]> {
  return sql<{ id: string; balance: string }[]>`
    select id, balance_minor::text as balance from accounts order by id`;
}
