import { Account, Asset, Keypair, Operation, TransactionBuilder } from '@stellar/stellar-sdk';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { totalCoinsStroops } from './limits.ts';
import { Network } from './network.ts';

/** Money and sequence invariants, checked on the network itself with a controlled clock. */

const passphrase = 'settledesk sandbox invariants';
const startMs = 1_800_000_000_000;

function newNetwork() {
  const clock = { now: startMs };
  const network = new Network({
    networkPassphrase: passphrase,
    ledgerCapacityOps: 1_000,
    clock: () => clock.now,
  });
  return { network, clock, root: Keypair.master(passphrase) };
}

type Build = { fee?: number; maxTime?: number; sequence?: bigint };

function signed(
  network: Network,
  source: Keypair,
  operation: ReturnType<typeof Operation.payment>,
  build: Build = {},
) {
  const account = network.account(source.publicKey());
  if (account === undefined) throw new Error('unknown source');
  const sequence = build.sequence ?? network.nextSequence(account);
  const transaction = new TransactionBuilder(new Account(source.publicKey(), (sequence - 1n).toString()), {
    fee: String(build.fee ?? 100),
    networkPassphrase: passphrase,
    timebounds: { minTime: 0, maxTime: build.maxTime ?? 0 },
  })
    .addOperation(operation)
    .build();
  transaction.sign(source);
  return transaction.toXDR();
}

function createAccounts(network: Network, root: Keypair, count: number): Keypair[] {
  const keypairs = Array.from({ length: count }, () => Keypair.random());
  for (const keypair of keypairs) {
    const create = Operation.createAccount({ destination: keypair.publicKey(), startingBalance: '100' });
    expect(network.submit(signed(network, root, create)).status).toBe('pending');
  }
  network.closeLedger();
  return keypairs;
}

function totalLumens(network: Network): bigint {
  let total = 0n;
  for (const entry of network.allEntries())
    if (entry.type === 'account') total += entry.account.balanceStroops;
  return total;
}

function pay(destination: Keypair, amount: string) {
  return Operation.payment({ destination: destination.publicKey(), asset: Asset.native(), amount });
}

describe('network invariants', () => {
  it('conserves lumens except fees, which go to the fee pool, and consumes each sequence number once', () => {
    const action = fc.record({
      from: fc.nat(3),
      to: fc.nat(3),
      amount: fc.integer({ min: 1, max: 150 }),
      fee: fc.integer({ min: 100, max: 1_000 }),
      sequenceShift: fc.constantFrom(0n, 0n, 0n, 1n, -1n),
      closeAfter: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(action, { minLength: 1, maxLength: 25 }), (actions) => {
        const { network, root } = newNetwork();
        const accounts = createAccounts(network, root, 4);
        for (const step of actions) {
          const source = accounts[step.from];
          const target = accounts[step.to];
          if (source === undefined || target === undefined) continue;
          const account = network.account(source.publicKey());
          if (account === undefined) continue;
          const sequence = network.nextSequence(account) + step.sequenceShift;
          network.submit(
            signed(network, source, pay(target, String(step.amount)), { fee: step.fee, sequence }),
          );
          if (step.closeAfter) network.closeLedger();
        }
        network.closeLedger();
        const latest = network.latestLedger();
        expect(totalLumens(network) + latest.feePoolStroops).toBe(totalCoinsStroops);
        const used = new Set<string>();
        let fees = 0n;
        for (const ledger of network.ledgerList()) {
          for (const hash of ledger.transactionHashes) {
            const record = network.transaction(hash);
            if (record === undefined) throw new Error('ledger lists an unknown transaction');
            const key = `${record.sourceAccount}:${record.sourceSequence}`;
            expect(used.has(key)).toBe(false);
            used.add(key);
            fees += record.feeChargedStroops;
          }
        }
        expect(fees).toBe(latest.feePoolStroops);
      }),
      { numRuns: 40 },
    );
  });

  it('never applies a transaction whose max time passed while it waited', () => {
    const { network, clock, root } = newNetwork();
    const [source, target] = createAccounts(network, root, 2);
    if (source === undefined || target === undefined) throw new Error('accounts missing');
    const before = network.account(source.publicKey());
    const maxTime = Math.floor(clock.now / 1_000) + 5;
    const admission = network.submit(signed(network, source, pay(target, '1'), { maxTime }));
    expect(admission.status).toBe('pending');
    clock.now += 10_000;
    network.closeLedger();
    network.closeLedger();
    expect(network.transaction(admission.status === 'pending' ? admission.hash : '')).toBeUndefined();
    expect(network.account(source.publicKey())).toEqual(before);
    expect(network.pendingCount()).toBe(0);
  });

  it('applies the same envelope once however often it is submitted', () => {
    const { network, root } = newNetwork();
    const [source, target] = createAccounts(network, root, 2);
    if (source === undefined || target === undefined) throw new Error('accounts missing');
    const envelope = signed(network, source, pay(target, '7'));
    expect(network.submit(envelope).status).toBe('pending');
    expect(network.submit(envelope).status).toBe('duplicate');
    network.closeLedger();
    expect(network.submit(envelope).status).toBe('applied');
    network.closeLedger();
    expect(network.account(target.publicKey())?.balanceStroops).toBe(1_070_000_000n);
  });

  it('consumes the fee and the sequence number of a transaction whose operation fails', () => {
    const { network, root } = newNetwork();
    const [source, target] = createAccounts(network, root, 2);
    if (source === undefined || target === undefined) throw new Error('accounts missing');
    const before = network.account(source.publicKey());
    if (before === undefined) throw new Error('source missing');
    const admission = network.submit(signed(network, source, pay(target, '500'), { fee: 300 }));
    network.closeLedger();
    const record = network.transaction(admission.status === 'pending' ? admission.hash : '');
    expect(record).toMatchObject({ successful: false, resultCodes: { operations: ['op_underfunded'] } });
    const after = network.account(source.publicKey());
    expect(after?.sequence).toBe(before.sequence + 1n);
    expect(after?.balanceStroops).toBe(before.balanceStroops - 100n);
    expect(network.account(target.publicKey())?.balanceStroops).toBe(1_000_000_000n);
  });
});
