import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endpointsOf, silentLogger } from '../../test/support/payouts.ts';
import { fund, paymentTransaction, startTestNetwork, type TestNetwork } from '../sandbox/test-support.ts';
import { classifyRead } from './classify.ts';
import { covers, firstTransactionLedger, lookupTransaction, readPathsOf } from './read.ts';
import { createSettlementChain } from './settlement-chain.ts';

let network: TestNetwork;
let hash: string;

beforeAll(async () => {
  network = await startTestNetwork({ ledgerCloseMs: 100 });
  const payer = await fund(network);
  const payee = await fund(network);
  const transaction = await paymentTransaction(network, payer, payee.publicKey(), '1');
  await network.horizon.submitTransaction(transaction);
  hash = Buffer.from(transaction.hash()).toString('hex');
});

afterEach(() => {
  network.sandbox.faults.clear();
});

afterAll(async () => {
  await network.stop();
});

const paths = () => readPathsOf(endpointsOf(network));
const lagging = () => network.sandbox.faults.add({ kind: 'stale_ingestion', listener: 0, lagLedgers: 64 });
const nowSeconds = () => Math.floor(Date.now() / 1_000);
const latestSequence = async () => (await network.rpcServer.getLatestLedger()).sequence;

describe('the Stellar read module', () => {
  it('asks each Horizon in order and then RPC', () => {
    expect(paths().map((path) => [path.name, path.kind])).toEqual([
      ['horizon-0', 'horizon'],
      ['horizon-1', 'horizon'],
      ['rpc', 'rpc'],
    ]);
  });

  it('finds a transaction on the second Horizon when the first has not ingested it', async () => {
    lagging();
    const question = { throughLedger: await latestSequence() };
    const found = await lookupTransaction(paths(), hash, { question });
    expect(found).toMatchObject({ kind: 'found', path: 'horizon-1', misses: [] });
  });

  it('finds it on RPC with the paging token Horizon gives it', async () => {
    const viaHorizon = await lookupTransaction(paths(), hash);
    const viaRpc = await lookupTransaction(paths().slice(-1), hash);
    expect(viaRpc).toMatchObject({ kind: 'found', path: 'rpc' });
    if (viaHorizon.kind !== 'found' || viaRpc.kind !== 'found') throw new TypeError('not found');
    expect(viaRpc.transaction).toEqual(viaHorizon.transaction);
  });

  it('calls a transaction absent only on a path that has ingested the ledger in question', async () => {
    const unknownHash = 'cd'.repeat(32);
    lagging();
    const latest = await latestSequence();
    const absent = await lookupTransaction(paths(), unknownHash, { question: { throughLedger: latest } });
    // The lagging first Horizon has not reached that ledger: it hands over to the second.
    expect(absent).toMatchObject({ kind: 'absent', path: 'horizon-1' });

    const future = await lookupTransaction(paths(), unknownHash, {
      question: { throughLedger: latest + 1_000 },
    });
    expect(future).toMatchObject({ kind: 'undecided', retryable: true, misses: [] });
    if (future.kind !== 'undecided') throw new TypeError('decided');
    expect(future.behind.map((entry) => entry.path)).toHaveLength(3);
    expect(future.behind.at(-1)?.path).toBe('horizon-0');
  });

  it('is undecided, and worth asking again, when every path is down', async () => {
    network.sandbox.faults.add({ kind: 'listener_down', listener: 0 });
    network.sandbox.faults.add({ kind: 'http_error', status: 503, listener: 1 });
    network.sandbox.faults.add({ kind: 'http_error', status: 503, route: 'rpc' });
    const found = await lookupTransaction(paths(), hash, { question: { throughTime: nowSeconds() } });
    expect(found).toMatchObject({ kind: 'undecided', behind: [], retryable: true });
    if (found.kind !== 'undecided') throw new TypeError('decided');
    expect(found.misses.map((miss) => [miss.path, miss.failure])).toEqual([
      ['horizon-0', 'retryable'],
      ['horizon-1', 'retryable'],
      ['rpc', 'retryable'],
    ]);
  });

  it('gives the settlement engine the transaction a lagging first Horizon does not have', async () => {
    lagging();
    const chain = createSettlementChain(endpointsOf(network), silentLogger);
    expect(await chain.lookup(hash)).toMatchObject({ kind: 'success' });
  });
});

describe('what a "not found" covers', () => {
  it('covers a question only when every bound is reached', () => {
    fc.assert(
      fc.property(
        fc.record({ sequence: fc.nat(1_000), closeTime: fc.nat(1_000), oldest: fc.nat(1_000) }),
        fc.record(
          { throughLedger: fc.nat(1_000), throughTime: fc.nat(1_000), sinceLedger: fc.nat(1_000) },
          { requiredKeys: [] },
        ),
        (ingested, question) => {
          const expected =
            (question.throughLedger === undefined || ingested.sequence >= question.throughLedger) &&
            (question.throughTime === undefined || ingested.closeTime >= question.throughTime) &&
            (question.sinceLedger === undefined || ingested.oldest <= question.sinceLedger);
          expect(covers(ingested, question)).toBe(expected);
        },
      ),
    );
  });

  it('needs full history for a transaction of unknown age', () => {
    const recent = { sequence: 900, closeTime: 100, oldest: 500 };
    expect(covers(recent, { throughTime: 100, sinceLedger: firstTransactionLedger })).toBe(false);
    expect(covers({ ...recent, oldest: 1 }, { throughTime: 100, sinceLedger: firstTransactionLedger })).toBe(
      true,
    );
  });

  it('calls a refusal terminal and everything else retryable', () => {
    expect(classifyRead({ response: { status: 400 } })).toBe('terminal');
    expect(classifyRead({ code: -32602, message: 'invalid hash' })).toBe('terminal');
    expect(classifyRead({ response: { status: 503 } })).toBe('retryable');
    expect(classifyRead({ response: { status: 500 } })).toBe('retryable');
    expect(classifyRead(new DOMException('timed out', 'TimeoutError'))).toBe('retryable');
  });
});
