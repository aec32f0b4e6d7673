import { randomUUID } from 'node:crypto';
import { Asset, type Keypair, Memo, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueReference } from '../../test/support/intents.ts';
import { endpointsOf, silentLogger } from '../../test/support/payouts.ts';
import { startTestService, type TestService } from '../../test/support/service.ts';
import { creditDeposit } from '../deposits/credit.ts';
import { signatureHeaderValue } from '../deposits/signature.ts';
import { DepositWatcher } from '../deposits/watcher.ts';
import { ensureMemo } from '../deposits/watcher-data.ts';
import { fund, startTestNetwork, type TestNetwork } from '../sandbox/test-support.ts';
import type { ChainAccess } from './context.ts';
import type { FindingRow } from './data.ts';
import { runDetector } from './runner.ts';
import { metric, openFindings, testDeps } from './test-support.ts';

const secret = 'reconcile-ramp-secret-0001';
let network: TestNetwork;
let service: TestService;
let hotWallet: Keypair;
let sender: Keypair;
let customer: string;
let chain: ChainAccess;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 100 });
  service = await startTestService({ env: { DEPOSIT_WEBHOOK_SECRET_RECONRAMP: secret } });
  await service.db.sql`insert into deposit_providers (name, kind) values ('reconramp', 'external')`;
  hotWallet = await fund(network);
  sender = await fund(network);
  const [row] = await service.db.sql<{ id: string }[]>`
    insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
  customer = row?.id ?? '';
  await issueReference(service.db.sql, { provider: 'reconramp', reference: 'ramp-1', accountId: customer });
  chain = { horizonUrls: endpointsOf(network).horizonUrls, hotWallet: hotWallet.publicKey() };
});

afterAll(async () => {
  await service.close();
  await network.stop();
});

async function webhook(reference: string, amount: string) {
  const body = JSON.stringify({ reference, accountId: customer, asset: 'XLM', amount });
  const timestamp = Math.floor(Date.now() / 1_000);
  return service.app.inject({
    method: 'POST',
    url: '/v1/webhooks/deposits/reconramp',
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-webhook-signature': signatureHeaderValue(secret, timestamp, body),
    },
  });
}

/** A payment into the hot wallet; returns its paging token. */
async function payHotWallet(amount: string, memo: Memo = Memo.none()): Promise<string> {
  const account = await network.horizon.loadAccount(sender.publicKey());
  const transaction = new TransactionBuilder(account, {
    fee: '100',
    networkPassphrase: network.sandbox.networkPassphrase,
    memo,
  })
    .addOperation(Operation.payment({ destination: hotWallet.publicKey(), asset: Asset.native(), amount }))
    .setTimeout(30)
    .build();
  transaction.sign(sender);
  const result = await network.horizon.submitTransaction(transaction);
  const payments = await network.horizon
    .payments()
    .forAccount(hotWallet.publicKey())
    .order('desc')
    .limit(1)
    .call();
  expect(payments.records[0]?.transaction_hash).toBe(result.hash);
  return payments.records[0]?.paging_token ?? '';
}

async function watch(): Promise<void> {
  const watcher = new DepositWatcher(service.db.sql, {
    horizonUrls: chain.horizonUrls,
    receivingAccount: hotWallet.publicKey(),
    logger: silentLogger,
  });
  while (await watcher.poll()) {
    // Until it has handled every payment.
  }
}

const run = () => runDetector(testDeps(service.db.sql, { chain }), 'deposits');

function reasonOf(finding: FindingRow | undefined): unknown {
  return (finding?.evidence as { reason?: string } | undefined)?.reason;
}

describe('deposits', () => {
  it('finds every deposit backed: provider webhooks by their events, chain deposits by their payments', async () => {
    expect((await webhook('ramp-1', '12')).statusCode).toBe(201);
    expect((await webhook('ramp-1', '12')).statusCode).toBe(200);
    const memo = await ensureMemo(service.db.sql, customer);
    await payHotWallet('3', Memo.id(memo.toString()));
    await payHotWallet('4');
    await watch();
    const [credited] = await service.db.sql<{ count: number }[]>`
      select count(*)::int as count from deposits where source = 'chain'`;
    expect(credited?.count).toBe(2);

    const report = await run();
    // Three deposits and two events (the credit and its replay).
    expect(report).toMatchObject({ outcome: 'completed', scanned: 5, findings: { created: 0 } });
    expect(await openFindings(service.db.sql, 'deposit_mismatch')).toEqual([]);
    expect(await metric('reconciliation_findings_open', { kind: 'deposit_mismatch' })).toBe(0);
    expect(await run()).toMatchObject({ scanned: 0, findings: { created: 0 } });
  });

  it('finds a provider deposit credited without its event, and an event whose deposit is missing', async () => {
    const createdBefore = await metric('reconciliation_findings_total', { kind: 'deposit_mismatch' });
    // A credit that bypassed the webhook path: nothing the provider sent stands behind it.
    const silent = await service.db.sql.begin((tx) =>
      creditDeposit(tx, {
        provider: 'reconramp',
        reference: 'ramp-ghost',
        accountId: customer,
        asset: 'XLM',
        amount: '9',
        source: 'webhook',
      }),
    );
    // An event recorded as processed whose deposit is not there.
    const eventId = randomUUID();
    const body = JSON.stringify({ reference: 'ramp-lost', accountId: customer, asset: 'XLM', amount: '2' });
    await service.db.sql`
      insert into inbound_webhooks (id, provider, body, state, outcome)
      values (${eventId}::uuid, 'reconramp', ${body}, 'processed', 'credited')`;

    const report = await run();
    expect(report.findings.created).toBe(2);
    const findings = await openFindings(service.db.sql, 'deposit_mismatch');
    const bySubject = new Map(findings.map((finding) => [finding.subject, finding]));
    expect(reasonOf(bySubject.get(silent.deposit.id))).toBe('no_provider_event');
    expect(bySubject.get(silent.deposit.id)?.evidence).toMatchObject({
      reference: 'ramp-ghost',
      amount: '9.0000000',
    });
    expect(reasonOf(bySubject.get(`webhook:${eventId}`))).toBe('provider_event_without_deposit');
    expect(await metric('reconciliation_findings_total', { kind: 'deposit_mismatch' })).toBe(
      createdBefore + 2,
    );
    expect(await metric('reconciliation_findings_open', { kind: 'deposit_mismatch' })).toBe(2);
  });

  it('finds chain deposits the chain does not show, or shows with another amount', async () => {
    const latest = (await network.horizon.ledgers().order('desc').limit(1).call()).records[0]?.sequence ?? 1;
    // A paging token of a recent ledger at which no payment reached the hot wallet.
    const invented = ((BigInt(latest) << 32n) | (7n << 12n) | 3n).toString();
    const ghost = await service.db.sql.begin((tx) =>
      creditDeposit(tx, {
        provider: 'stellar',
        reference: invented,
        accountId: customer,
        asset: 'XLM',
        amount: '1',
        source: 'chain',
      }),
    );
    const token = await payHotWallet('5');
    const inflated = await service.db.sql.begin((tx) =>
      creditDeposit(tx, {
        provider: 'stellar',
        reference: token,
        accountId: customer,
        asset: 'XLM',
        amount: '50',
        source: 'chain',
      }),
    );

    const report = await run();
    expect(report.findings.created).toBe(2);
    const findings = await openFindings(service.db.sql, 'deposit_mismatch');
    const bySubject = new Map(findings.map((finding) => [finding.subject, finding]));
    expect(reasonOf(bySubject.get(ghost.deposit.id))).toBe('payment_not_on_chain');
    expect(reasonOf(bySubject.get(inflated.deposit.id))).toBe('payment_differs');
    expect(bySubject.get(inflated.deposit.id)?.evidence).toMatchObject({
      amount: '50.0000000',
      onChain: { amount: '5.0000000' },
    });
    // Examined once: the next runs find nothing new and keep them open.
    expect((await run()).findings).toMatchObject({ created: 0, seen: 0 });
    expect(await openFindings(service.db.sql, 'deposit_mismatch')).toHaveLength(4);
  });

  it('examines everything again with a full run, without duplicating findings', async () => {
    const report = await runDetector(testDeps(service.db.sql, { chain }), 'deposits', { full: true });
    expect(report).toMatchObject({ outcome: 'completed', findings: { created: 0, seen: 4 } });
    expect(await openFindings(service.db.sql, 'deposit_mismatch')).toHaveLength(4);
  });

  it('takes a deposit held in suspense as backed by its event: its finding stays the one the webhook opened', async () => {
    const [other] = await service.db.sql<{ id: string }[]>`
      insert into accounts (type, asset) values ('customer', 'XLM') returning id`;
    await issueReference(service.db.sql, {
      provider: 'reconramp',
      reference: 'ramp-held',
      accountId: other?.id ?? '',
    });
    const held = await webhook('ramp-held', '6');
    expect(held.json()).toMatchObject({ outcome: 'held' });
    const report = await run();
    expect(report.findings).toMatchObject({ created: 0 });
    const [finding] = (await openFindings(service.db.sql, 'deposit_mismatch')).filter(
      (row) => row.subject === held.json().depositId,
    );
    expect(finding?.evidence).toMatchObject({
      reason: 'held_in_suspense',
      suspenseReason: 'account_differs',
    });
  });
});
